"""``runtime infer``: the payload's per-tile processing applied to one file, without sockets.

The same preprocessing, device adapter and vectorisation as the server, so a file run here and the
same pixels streamed to a runtime give the same vessels.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from runtime.bundle import read_bundle
from runtime.device import open_device
from runtime.fit import manifest_trained_for, tile_fit_warnings
from runtime.merge import merge_detections
from runtime.preprocess import Preprocessor
from runtime.vectorize import vectorize


def read_input(path: str | Path) -> tuple[np.ndarray, Affine, CRS | None]:
    """Read a ``.npy`` array ((bands, H, W) or (H, W)) or a GeoTIFF as (bands, H, W) counts."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        pixels = np.load(path, allow_pickle=False)
        transform, crs = Affine.identity(), None
    elif suffix in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as src:
            pixels, transform, crs = src.read(), src.transform, src.crs
    else:
        raise ValueError(f"{path}: unsupported input {suffix!r}; valid: ['.npy', '.tif', '.tiff']")
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3 or pixels.dtype.name not in ("uint8", "uint16"):
        raise ValueError(f"{path}: need (bands, H, W) uint8 or uint16 counts, got {pixels.shape} {pixels.dtype}")
    return pixels, transform, crs


def infer_file(
    model: str | Path, input_path: str | Path, device: str, vectorize_opts: dict[str, Any], cpu_precision: str = "f32"
) -> dict[str, Any]:
    """Segment a whole image tile by tile and return a GeoJSON FeatureCollection of vessels, with
    ``fit``: the reasons the image is not what the model was trained for (:mod:`runtime.fit`: its
    count type, and its metres per pixel where its CRS says them), as the runtime would raise them."""
    bundle = read_bundle(model)
    pixels, transform, crs = read_input(input_path)
    fit = tile_fit_warnings(manifest_trained_for(bundle.manifest), None, tuple(transform)[:6], crs, pixels.dtype.name)
    adapter = open_device(bundle, device, lambda out, data: None, infer_requests=1, cpu_precision=cpu_precision)
    prep = Preprocessor(bundle.manifest["input"], adapter.input_shape)
    _, _, th, tw = adapter.input_shape
    discriminator = bundle.discriminator
    features: list[dict[str, Any]] = []
    for row in range(0, pixels.shape[1], th):
        for col in range(0, pixels.shape[2], tw):
            tile = pixels[:, row:row + th, col:col + tw]
            batch, valid = prep(tile, {})
            prob = adapter.infer(batch)[0, 0]
            features += vectorize(
                prob, bundle.threshold, transform @ Affine.translation(col, row), crs, valid=valid,
                min_area_px=bundle.min_area_px if bundle.min_area_px is not None else vectorize_opts["min_area_px"],
                simplify_px=vectorize_opts["simplify_px"],
                connectivity=vectorize_opts["connectivity"], min_score=bundle.min_score,
                image=tile, discriminator=discriminator,
            )
    # the pixel size from the whole transform: ``a`` alone is 0 on a grid turned by 90 degrees
    merged = merge_detections(features, crs, tolerance=0.01 * math.sqrt(abs(transform.determinant)))
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs.to_string()}} if crs else None,
        "model": {"name": bundle.name, "sha256": bundle.id},
        "numerics": adapter.numerics,
        "fit": {"warnings": fit},
        "features": merged,
    }
