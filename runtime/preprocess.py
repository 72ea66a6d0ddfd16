"""Turn a tile of raw sensor counts into the model's input, as the bundle's manifest says."""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.bands import misplaced_bands
from runtime.protocol import Reason, TileRejected


def normalise_counts(counts: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, log: bool,
                     out: np.ndarray | None = None) -> np.ndarray:
    """``(counts - mean) * inv_std`` in float32, on ``log(1 + counts)`` with ``log``: the host's
    normalisation, the one arithmetic the payload and training (search.data.Normalization) share,
    so that training sees the very numbers the payload feeds the model. Written into ``out`` when
    given (a view of the device batch), else into a new array."""
    out = np.empty(counts.shape, np.float32) if out is None else out
    if log:
        np.log1p(counts, out=out, dtype=np.float32)
        out -= mean
    else:
        np.subtract(counts, mean, out=out, dtype=np.float32)
    out *= inv_std
    return out


class Preprocessor:
    """Normalises counts per band (or not) and pads a tile up to the model's static input size.

    ``normalization.scale = "log"`` takes log(1 + counts) first (on the host only), for inputs whose
    amplitude spans decades, as SAR's does.

    Where the normalisation happens is the bundle's choice (``input.normalization.where``): on the
    host, here, in f32 before the device sees the tile, so that 16-bit counts never meet FP16 range
    limits; or in the IR, in which case the counts go to the model in its input type
    (``input.dtype``: float32, uint8 or uint16), with no conversion when the tile already has that
    type, and no copy either when it also fills the input and its buffer may be lent to the device
    (a tile received from ZeroMQ: its frame's memory, held by the tile until its inference is
    collected). Edge tiles are padded with ``normalization.pad`` (counts per band; 0 if absent)
    for a model normalised in the IR, and with 0 after normalising on the host.
    """

    def __init__(self, manifest_input: dict[str, Any], model_shape: tuple[int, int, int, int]):
        _, self.bands, self.height, self.width = model_shape
        norm = manifest_input["normalization"]
        names = [str(b).lower() for b in manifest_input.get("bands") or []]
        # The model's band names, when they name each band once: a tile naming the same bands in
        # another order is refused rather than fed to the model as if in its order.
        self.band_names = names if len(set(names)) == len(names) == self.bands else None
        self.dtype = np.dtype(manifest_input.get("dtype", "float32"))
        self.on_host = norm["where"] == "host"
        self.log = norm.get("scale", "linear") == "log"  # runtime.bundle.NORMALIZATION_SCALES
        if self.on_host:
            self.mean = np.asarray(norm["mean"], dtype=np.float32).reshape(-1, 1, 1)
            self.inv_std = (1.0 / np.asarray(norm["std"], dtype=np.float32)).reshape(-1, 1, 1)
            self.pad = np.zeros((self.bands, 1, 1), dtype=self.dtype)
        else:
            pad = norm.get("pad")  # absent or null: not recorded (runtime.bundle reads both so), 0 counts
            self.pad = np.asarray([0] * self.bands if pad is None else pad, dtype=self.dtype).reshape(-1, 1, 1)

    def __call__(self, pixels: np.ndarray, header: dict[str, Any]) -> tuple[np.ndarray, tuple[int, int]]:
        """Return the (1, C, H, W) batch in the model's input type and the (height, width) of the
        real data in it."""
        bands, height, width = pixels.shape
        if bands != self.bands or height > self.height or width > self.width:
            raise TileRejected(
                Reason.BAD_SHAPE,
                f"tile is {bands}x{height}x{width}; the model takes {self.bands} bands and at most "
                f"{self.height}x{self.width} pixels",
                header,
            )
        said = header.get("bands")
        if (self.band_names and isinstance(said, list) and all(isinstance(b, str) for b in said)
                and [b.lower() for b in said] != self.band_names):
            # the model's bands in another order, or some of them at other positions (runtime.bands' rule 2)
            misplaced = misplaced_bands(said, self.band_names)
            if misplaced:
                raise TileRejected(
                    Reason.BAD_SHAPE,
                    f"tile's bands are {said}; the model takes {self.band_names} in that order ({misplaced} would "
                    "feed other model bands)",
                    header,
                )
        if not self.on_host and not np.can_cast(pixels.dtype, self.dtype, "safe"):
            raise TileRejected(
                Reason.UNSUPPORTED_DTYPE,
                f"tile is {pixels.dtype.name}; this model takes {self.dtype.name} counts "
                f"(or a type that converts to it without loss)",
                header,
            )
        full = height == self.height and width == self.width
        if (full and not self.on_host and pixels.dtype == self.dtype and pixels.flags.c_contiguous
                and pixels.flags.writeable):  # OpenVINO shares only writeable memory
            return pixels[None], (height, width)
        batch = np.empty((1, bands, self.height, self.width), dtype=self.dtype)
        if not full:
            batch[0] = self.pad
        view = batch[0, :, :height, :width]
        if self.on_host:
            normalise_counts(pixels, self.mean, self.inv_std, self.log, out=view)
        else:
            view[...] = pixels
        return batch, (height, width)
