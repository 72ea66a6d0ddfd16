"""``runtime infer``: the payload's per-tile processing applied to one file, without sockets.

The same preprocessing, device adapter and vectorisation as the server, so a file run here and the
same pixels streamed to a runtime give the same vessels.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from runtime.bands import adapt_bands, model_band_names
from runtime.bundle import read_bundle
from runtime.device import open_device
from runtime.fit import manifest_trained_for, tile_fit_warnings
from runtime.merge import merge_detections
from runtime.preprocess import Preprocessor
from runtime.protocol import TileRejected
from runtime.vectorize import vectorize

log = logging.getLogger(__name__)


def read_input(path: str | Path) -> tuple[np.ndarray, Affine, CRS | None, list[str]]:
    """Read a ``.npy`` array ((bands, H, W) or (H, W)) or a GeoTIFF as (bands, H, W) counts, with
    each band's name: a GeoTIFF's band description or colour interpretation, else ``band<n>``
    (1-based), as the rig's readers name them, so :func:`runtime.bands.adapt_bands` picks the same
    bands here as there. A GeoTIFF's alpha band is left out, as the rig leaves it out: it is not a
    measurement."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'a folder, not an image file' if path.is_dir() else 'no such file'}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        pixels = np.load(path, allow_pickle=False)
        transform, crs, names = Affine.identity(), None, None
    elif suffix in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as src:
            interp = [ci.name for ci in src.colorinterp]
            keep = [i for i, ci in enumerate(interp) if ci != "alpha"] or list(range(src.count))
            pixels, transform, crs = src.read([i + 1 for i in keep]), src.transform, src.crs
            names = [src.descriptions[i] or (interp[i] if interp[i] not in ("undefined", "gray") else f"band{i + 1}")
                     for i in keep]
        if crs is None:  # a geotransform without a CRS: units unknown; the pixel grid, as hil reads it
            transform = Affine.identity()
        if len(keep) < len(interp):
            log.info("%s: alpha band dropped (%d bands in the file, %d used)", path, len(interp), len(keep))
    else:
        raise ValueError(f"{path}: unsupported input {suffix!r}; valid: ['.npy', '.tif', '.tiff']")
    if pixels.ndim not in (2, 3) or pixels.dtype.name not in ("uint8", "uint16"):  # the shape as it was given
        raise ValueError(f"{path}: need (bands, H, W) or (H, W) uint8 or uint16 counts, got {pixels.shape} {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[None]
    return pixels, transform, crs, names or [f"band{i + 1}" for i in range(pixels.shape[0])]


def infer_file(
    model: str | Path, input_path: str | Path, device: str, vectorize_opts: dict[str, Any], cpu_precision: str = "f32"
) -> dict[str, Any]:
    """Segment a whole image tile by tile and return a GeoJSON FeatureCollection of vessels, with
    ``fit``: the reasons the image is not what the model was trained for (:mod:`runtime.fit`: its
    count type, and its metres per pixel where its CRS says them), as the runtime would raise them,
    and ``bands``: how the image's bands were made the model's (``adaptation``, the sentence the
    rig's report gives as ``band_adaptation``).

    The image's bands are adapted to the model's by the rig's rule (:func:`runtime.bands.adapt_bands`:
    as is, by name, or a single band repeated), so a file inferred here and the same file run
    through ``python -m hil run`` feed the model the same bands; a repeat or a pick is logged.

    Raises:
        ValueError: when no rule makes the image's bands the model's, or the runtime would reject
            its tiles (their count type), saying why, as a serving runtime's rejection would.
    """
    bundle = read_bundle(model)
    pixels, transform, crs, names = read_input(input_path)
    model_bands = model_band_names(bundle.manifest["input"])
    try:
        index, adaptation = adapt_bands(names, model_bands, option=None)
    except ValueError as exc:
        raise ValueError(f"{input_path}: {exc}") from None
    if index is not None:
        pixels = pixels[index]
        log.info("%s: bands: %s", input_path, adaptation)
    fit = tile_fit_warnings(manifest_trained_for(bundle.manifest), None, tuple(transform)[:6], crs, pixels.dtype.name)
    adapter = open_device(bundle, device, lambda out, data: None, infer_requests=1, cpu_precision=cpu_precision)
    prep = Preprocessor(bundle.manifest["input"], adapter.input_shape)
    _, _, th, tw = adapter.input_shape
    discriminator = bundle.discriminator
    features: list[dict[str, Any]] = []
    for row in range(0, pixels.shape[1], th):
        for col in range(0, pixels.shape[2], tw):
            tile = pixels[:, row:row + th, col:col + tw]
            try:
                batch, valid = prep(tile, {})
            except TileRejected as exc:  # e.g. uint16 counts for a uint8 model: every tile would be
                raise ValueError(f"{input_path}: the runtime rejects its tiles: {exc}") from None
            prob = adapter.infer(batch)[0, 0]
            features += vectorize(
                prob, bundle.threshold, transform @ Affine.translation(col, row), crs, valid=valid,
                min_area_px=bundle.min_area_px if bundle.min_area_px is not None else vectorize_opts["min_area_px"],
                simplify_px=vectorize_opts["simplify_px"],
                connectivity=vectorize_opts["connectivity"], min_score=bundle.min_score,
                image=tile, discriminator=discriminator,
                # a piece at an inner tile edge waits for the merge below to be judged by its size
                borders=(row > 0, col > 0, row + valid[0] < pixels.shape[1], col + valid[1] < pixels.shape[2]),
            )
    # the pixel size from the whole transform: ``a`` alone is 0 on a grid turned by 90 degrees
    merged = merge_detections(features, crs, tolerance=0.01 * math.sqrt(abs(transform.determinant)),
                              connectivity=vectorize_opts["connectivity"])
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs.to_string()}} if crs else None,
        "model": {"name": bundle.name, "sha256": bundle.id},
        "numerics": adapter.numerics,
        "fit": {"warnings": fit},
        "bands": {"adaptation": adaptation},
        "features": merged,
    }
