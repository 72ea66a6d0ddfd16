"""The generator's data: a scene, its vessels, how each is drawn, and the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import Polygon

from runtime.config import load_defaults


#: Imaging modes of the generator.
MODES = ("optical", "sar")

Window = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open), clipped to the scene


@dataclass
class Vessel:
    """One vessel of the truth: its outline in map coordinates (the scene CRS, metres) and size."""

    polygon: Polygon
    length_m: float
    width_m: float
    heading_deg: float  # direction of travel, degrees clockwise from grid north, [0, 360)


@dataclass
class Scene:
    """A synthetic scene: sensor counts, the truth mask and polygons, and the georeference.

    ``land`` (1 on land) and ``cloud`` (opacity 0..1) are extras for checks and analysis; they come
    last, with defaults, so that code building a Scene by position keeps working.
    """

    image: np.ndarray  # (bands, H, W) uint8 or uint16 counts
    mask: np.ndarray  # (H, W) uint8, 1 where a vessel is
    vessels: list[Vessel]
    transform: Affine  # pixel -> map, north-up, pixel size gsd_m
    crs: CRS
    bands: list[str]
    seed: int
    gsd_m: float
    land: np.ndarray | None = None  # (H, W) uint8, 1 on land
    cloud: np.ndarray | None = None  # (H, W) float32 cloud opacity


@dataclass
class _Look:
    """How a placed vessel is drawn; kept apart from Vessel, which is the truth that others read."""

    vessel: Vessel
    centre: tuple[float, float]  # map x, y of the hull's midpoint (not its centroid: the bow is pointed)
    bow_m: float
    kind: str
    deck: np.ndarray
    accent: np.ndarray
    bridge_fraction: float
    hatch_period_m: float
    contrast: float
    wake_length_m: float  # 0 for a stationary vessel
    wake_intensity: float


def defaults() -> dict[str, Any]:
    """The generator's defaults: the ``[synthetic]`` table of ``flightsim/defaults.toml``."""
    return load_defaults(Path(__file__).parents[1] / "defaults.toml")["synthetic"]
