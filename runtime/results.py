"""A tile on its way through the payload, and the result it becomes.

:class:`InFlight` travels with a tile from ingest through the device and a vectorise worker;
:func:`describe` turns the device's output for it into the result message's body: the vessels as
GeoJSON polygons with their measurements (:mod:`runtime.vectorize`), the tile's ids and georeference,
the model, and where the time went.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from runtime import protocol
from runtime.discriminate import SecondStage
from runtime.vectorize import tile_borders, vectorize


@dataclass
class InFlight:
    """What travels with a tile through the device and the vectorise workers."""

    header: dict[str, Any]
    crs: CRS | None
    valid: tuple[int, int]
    threshold: float
    model: dict[str, str]
    t_received: float
    t_submitted: float
    identity: bytes = b""                 # the sender, told when the tile's result has gone out
    key: tuple[str, str, str] | None = None  # (scene_id, tile_id, checksum): what makes a resend a duplicate
    min_area_px: int | None = None        # the model's own smallest vessel (manifest), else the config's
    min_score: float = 0.0                # the model's lowest mean vessel probability (manifest)
    batch: np.ndarray | None = None       # the device input, held until the inference succeeds (re-runs)
    attempts: int = 1
    adapter: Any = None                   # the adapter it was last submitted to
    discriminator: SecondStage | None = None  # the model's second stage (manifest), if it has one
    pixels: np.ndarray | None = None      # the tile's counts: for the discriminator, and a re-run on another model
    internal_error: bool = False          # a bug met on it has been counted and said (once per tile)


def describe(output: np.ndarray, job: InFlight, t_inferred: float,
             opts: Mapping[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
    """The ok result of ``job`` from the device's (1, 1, H, W) probabilities, and its vessel mask
    (uint8, the real data only) when the tile asked for one. ``opts``: the ``[vectorize]`` table,
    whose ``min_area_px`` gives way to the model's own (``job.min_area_px``)."""
    header = job.header
    prob = output[0, 0]
    features = vectorize(
        prob,
        job.threshold,
        Affine(*header.get("transform", (1, 0, 0, 0, 1, 0))[:6]),
        job.crs,
        min_area_px=job.min_area_px if job.min_area_px is not None else int(opts["min_area_px"]),
        simplify_px=float(opts["simplify_px"]),
        connectivity=int(opts["connectivity"]),
        valid=job.valid,
        min_score=job.min_score,
        image=job.pixels,
        discriminator=job.discriminator,
        borders=tile_borders(header.get("window"), job.valid, prob.shape),
    )
    mask = None
    if header.get("want_mask"):
        h, w = job.valid
        mask = (prob[:h, :w] >= job.threshold).astype(np.uint8)
    t_end = time.perf_counter()
    result = {
        **protocol.tile_ids(header),
        "status": "ok",
        "reason": None,
        "model": job.model,
        "timings_ms": {
            "decode": 1e3 * (job.t_submitted - job.t_received),
            "infer": 1e3 * (t_inferred - job.t_submitted),
            "vectorize": 1e3 * (t_end - t_inferred),
            "total": 1e3 * (t_end - job.t_received),
        },
        "crs": header.get("crs"),
        "transform": header.get("transform"),
        "window": header.get("window"),
        "detections": {"type": "FeatureCollection", "features": features},
    }
    return result, mask
