"""Golden tile: a known tile and the output the model must give on it, carried in the bundle.

Why: a model can load cleanly and still be broken for real data (wrong normalisation, wrong bands,
an IR that saturates on the device); an all-zero tile does not show it. The ground runs the model on
a real tile with vessels, stores the tile and the probability map it gave (``golden.npz``,
checksummed in the manifest like the IR), and the payload's acceptance test runs the same tile on
its own device and refuses the model unless it reproduces the map within the tolerances of the
manifest's ``golden`` table (mean absolute probability difference, and IoU of the thresholded
masks). The tolerances absorb what FP16 on the target changes; a broken model misses them by far.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import GOLDEN_FILE, Bundle, BundleError, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.protocol import TileRejected

#: Defaults of the manifest's golden table.
MAX_MEAN_ABS = 0.02
MIN_MASK_IOU = 0.9


def _predict(bundle: Bundle, tile: np.ndarray, device: str, adapter: Any = None, preprocess: Any = None) -> np.ndarray:
    from runtime.device import open_device
    from runtime.preprocess import Preprocessor

    own = adapter is None
    adapter = adapter or open_device(bundle, device, lambda *_: None, infer_requests=1)
    try:
        prep = preprocess or Preprocessor(bundle.manifest["input"], adapter.input_shape)
        batch, (h, w) = prep(tile, {})
        return adapter.infer(batch)[0, 0, :h, :w].astype(np.float32)
    finally:
        if own:
            adapter.close()


def with_golden(bundle_dir: str | Path, tile: np.ndarray, out_dir: str | Path | None = None, device: str = "CPU",
                max_mean_abs: float = MAX_MEAN_ABS, min_mask_iou: float = MIN_MASK_IOU,
                require_vessels: bool = True) -> Bundle:
    """Rewrite the bundle (in place, or into ``out_dir``) with ``tile`` (bands, H, W counts) as its
    golden tile and the output ``device`` gives on it (the CPU in f32 by default) as expected.

    ``require_vessels``: refuse a tile on which the model finds no vessel pixel. On such a tile the
    acceptance test cannot tell a working model from one that never finds a ship (both give an empty
    mask, IoU 1.0), so a flight bundle's golden tile must hold vessels. The search's candidates pass
    False: a barely trained candidate may find nothing, and its golden tile still checks that the
    device reproduces the ground's output; its manifest's ``golden.vessel_pixels`` is then 0.

    Raises:
        ValueError: for a tile that is not (bands, H, W) uint8/uint16 counts, or one without vessels
            when required.
    """
    bundle = read_bundle(bundle_dir)
    tile = np.ascontiguousarray(tile)
    if tile.ndim != 3:
        # a grey (H, W) tile must say its one band: the payload receives (bands, H, W) and nothing else
        raise ValueError(f"a golden tile is (bands, H, W) counts, as a payload receives them; got shape {tile.shape}"
                         + (": give it as tile[None] for one band" if tile.ndim == 2 else ""))
    if tile.dtype.name not in ("uint8", "uint16"):
        raise ValueError(f"a golden tile holds counts as a payload receives them (uint8, uint16), not {tile.dtype}")
    expected = _predict(bundle, tile, device)
    vessel_pixels = int((expected >= bundle.threshold).sum())
    if vessel_pixels == 0 and require_vessels:
        # A tile on which the model finds nothing cannot tell a working model from one that never
        # finds a ship: both give an empty mask there (IoU 1.0) and probabilities near 0.
        raise ValueError(f"a golden tile must hold vessels: the model finds no pixel at or above its threshold "
                         f"{bundle.threshold:g} on this one; choose a tile with vessels")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, tile=tile, expected=expected.astype(np.float16))
    manifest = rewritable_manifest(bundle)
    manifest["golden"] = {
        "file": GOLDEN_FILE, "measured_on": f"{device}, runtime acceptance path", "max_mean_abs": max_mean_abs,
        "min_mask_iou": min_mask_iou, "vessel_pixels": vessel_pixels,
        "shape": list(tile.shape), "dtype": tile.dtype.name,
    }
    return rewrite_bundle(bundle, Path(out_dir or bundle_dir), manifest, {GOLDEN_FILE: buffer.getvalue()})


def check_golden(bundle: Bundle, adapter: Any, preprocess: Any) -> dict[str, float] | None:
    """Run the bundle's golden tile on ``adapter``; the agreement, or BundleError saying what differs.
    None when the bundle has no golden tile."""
    if GOLDEN_FILE not in bundle.files:
        return None
    table = bundle.manifest["golden"]
    try:
        with np.load(io.BytesIO(bundle.files[GOLDEN_FILE]), allow_pickle=False) as data:
            tile, expected = data["tile"], data["expected"].astype(np.float32)
    except (ValueError, KeyError, OSError) as exc:
        raise BundleError(f"{GOLDEN_FILE} is not a golden tile (tile, expected): {exc}") from None
    if tile.ndim != 3:  # the preprocessing would fail on it with an unpacking error, not a verdict
        raise BundleError(f"{GOLDEN_FILE}: its tile must be (bands, H, W) counts; got shape {tile.shape}")
    try:
        got = _predict(bundle, tile, "", adapter, preprocess)
    except TileRejected as exc:  # the bundle's fault, not a tile's: a BundleError naming its golden tile
        raise BundleError(f"{GOLDEN_FILE}: the model cannot take its tile: {exc.detail}") from None
    if got.shape != expected.shape:
        raise BundleError(f"golden tile: the model gave {got.shape}, expected {expected.shape}")
    mean_abs = float(np.abs(got - expected).mean()) if np.isfinite(got).all() else float("inf")
    want, mask = expected >= bundle.threshold, got >= bundle.threshold
    union = int((want | mask).sum())
    iou = float((want & mask).sum() / union) if union else 1.0
    if not (mean_abs <= float(table["max_mean_abs"]) and iou >= float(table["min_mask_iou"])):
        raise BundleError(f"the golden tile does not reproduce on this device: mean |p - expected| {mean_abs:.3g} "
                          f"(at most {table['max_mean_abs']}), mask IoU {iou:.3f} (at least {table['min_mask_iou']})")
    return {"mean_abs": mean_abs, "mask_iou": iou}
