"""The truth mask of a scene's vessels, and a scene written as GeoTIFFs and GeoJSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import mapping

from flightsim.synthetic.model import Scene, Vessel, defaults


def rasterize_vessels(vessels: list[Vessel], transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """The truth mask of ``vessels``: pixels whose centre lies in a hull (``all_touched=False``)."""
    if not vessels:
        return np.zeros(shape, np.uint8)
    shapes = [(v.polygon, 1) for v in vessels]
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, all_touched=False, dtype=np.uint8)


def write_scene(scene: Scene, out_dir: str | Path, config: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``scene.tif``, ``truth_mask.tif`` (GeoTIFFs on one grid) and ``truth.geojson``.

    The GeoJSON carries the scene CRS in a top-level ``crs`` member because its coordinates are
    projected metres, not the WGS 84 degrees that RFC 7946 assumes. ``config``: the ``[synthetic]``
    table to take the GeoTIFF layout from (default ``defaults.toml``'s).
    """
    cfg = config or defaults()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"scene": out / "scene.tif", "mask": out / "truth_mask.tif", "vessels": out / "truth.geojson"}
    for path in (paths["scene"], paths["mask"]):
        # GDAL opens a GeoTIFF it is to overwrite (to delete it as a dataset): one left broken by an
        # interrupted write failed every later write to this folder with a GDAL traceback.
        path.unlink(missing_ok=True)
    n_bands, height, width = scene.image.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "height": height, "width": width, "crs": scene.crs,
        "transform": scene.transform, "compress": cfg["geotiff_compress"],
    }
    block = int(cfg["geotiff_block_px"])
    if height >= block and width >= block:  # tiles make the tiler's windowed reads cheap
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    tags = {"generator": "flightsim.synthetic", "seed": str(scene.seed), "gsd_m": str(scene.gsd_m)}

    with rasterio.open(paths["scene"], "w", count=n_bands, dtype=scene.image.dtype.name, **profile) as dst:
        dst.write(scene.image)
        for i, name in enumerate(scene.bands, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**tags)
    with rasterio.open(paths["mask"], "w", count=1, dtype="uint8", **profile) as dst:
        dst.write(scene.mask.astype(np.uint8), 1)
        dst.set_band_description(1, "vessel")
        dst.update_tags(**tags)

    features = [
        {
            "type": "Feature",
            "id": i,
            "geometry": mapping(v.polygon),
            "properties": {"length_m": v.length_m, "width_m": v.width_m, "heading_deg": v.heading_deg},
        }
        for i, v in enumerate(scene.vessels)
    ]
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": scene.crs.to_string()}},
        "features": features,
    }
    paths["vessels"].write_text(json.dumps(collection, indent=1))
    return paths
