"""Ground truth for a scene: a vessel mask on the scene grid and vessel polygons in its CRS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
from shapely.geometry import Polygon, shape


@dataclass
class Truth:
    mask: np.ndarray            # (H, W) uint8, 1 = vessel
    vessels: list[Polygon]      # outlines in the scene CRS


def read_truth(path: str | Path, scene: str | Path) -> Truth:
    """Truth from a mask GeoTIFF (nonzero = vessel) or a GeoJSON of vessel polygons.

    Either way both forms come back: polygons are rasterized onto the scene's grid, and a mask's
    connected components become polygons, so that pixel and object scores use the same truth.
    """
    path, scene = Path(path), Path(scene)
    if not path.is_file():
        raise ValueError(f"{path}: no such truth file")
    with rasterio.open(scene) as src:
        shape_, transform = (src.height, src.width), src.transform
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        with rasterio.open(path) as src:
            if (src.height, src.width) != shape_:
                raise ValueError(f"{path}: mask is {src.height}x{src.width}, scene is {shape_[0]}x{shape_[1]}")
            mask = (src.read(1) > 0).astype(np.uint8)
        vessels = [
            shape(geom)
            for geom, _ in rasterio.features.shapes(mask, mask=mask.astype(bool), transform=transform)
        ]
        return Truth(mask, vessels)
    if suffix in (".geojson", ".json"):
        try:
            collection = json.loads(path.read_text())
            vessels = [shape(f["geometry"]) for f in collection["features"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a GeoJSON FeatureCollection of polygons: {exc}") from None
        mask = rasterio.features.rasterize(
            [(v, 1) for v in vessels], out_shape=shape_, transform=transform, fill=0, dtype="uint8"
        ) if vessels else np.zeros(shape_, np.uint8)
        return Truth(mask, vessels)
    raise ValueError(f"{path}: truth must be a mask GeoTIFF or a GeoJSON; valid: ['.tif', '.tiff', '.geojson', '.json']")
