"""Turn a tile of raw sensor counts into the model's input, as the bundle's manifest says."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.protocol import Reason, TileRejected


class Preprocessor:
    """Normalises counts per band and pads a tile up to the model's static input size.

    Where the normalisation happens is the bundle's choice (``input.normalization.where``): on the
    host, here, in f32 before the device sees the tile, so that 16-bit counts never meet FP16 range
    limits; or in the IR, in which case the raw counts are passed on as f32.
    """

    def __init__(self, manifest_input: dict[str, Any], model_shape: tuple[int, int, int, int]):
        _, self.bands, self.height, self.width = model_shape
        norm = manifest_input["normalization"]
        self.on_host = norm["where"] == "host"
        if self.on_host:
            self.mean = np.asarray(norm["mean"], dtype=np.float32).reshape(-1, 1, 1)
            self.inv_std = (1.0 / np.asarray(norm["std"], dtype=np.float32)).reshape(-1, 1, 1)

    def __call__(self, pixels: np.ndarray, header: dict[str, Any]) -> tuple[np.ndarray, tuple[int, int]]:
        """Return the (1, C, H, W) f32 batch and the (height, width) of the real data in it."""
        bands, height, width = pixels.shape
        if bands != self.bands or height > self.height or width > self.width:
            raise TileRejected(
                Reason.BAD_SHAPE,
                f"tile is {bands}x{height}x{width}; the model takes {self.bands} bands and at most "
                f"{self.height}x{self.width} pixels",
                header,
            )
        batch = np.zeros((1, bands, self.height, self.width), dtype=np.float32)
        view = batch[0, :, :height, :width]
        if self.on_host:
            np.subtract(pixels, self.mean, out=view, dtype=np.float32)
            view *= self.inv_std
        else:
            view[...] = pixels
        return batch, (height, width)
