"""The sensor: its point-spread function and the quantisation of radiometry to counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _blur3(img: np.ndarray, w: float) -> None:
    """Separable 3-tap point-spread function [w, 1-2w, w], edges replicated, in place."""
    for axis in (1, 2):
        src = img.copy()
        img *= 1.0 - 2.0 * w
        lead = [slice(None)] * 3
        lag = [slice(None)] * 3
        lead[axis], lag[axis] = slice(1, None), slice(None, -1)
        img[tuple(lead)] += w * src[tuple(lag)]
        img[tuple(lag)] += w * src[tuple(lead)]
        first = [slice(None)] * 3
        last = [slice(None)] * 3
        first[axis], last[axis] = slice(0, 1), slice(-1, None)
        img[tuple(first)] += w * src[tuple(first)]
        img[tuple(last)] += w * src[tuple(last)]


def _quantize(img: np.ndarray, spec: dict[str, Any], dtype: str) -> np.ndarray:
    """Reflectance to counts, saturating at the sensor's maximum count."""
    counts = np.rint(img * np.float32(spec["full_scale"]))
    np.clip(counts, 0, spec["max_count"], out=counts)
    return counts.astype(dtype)
