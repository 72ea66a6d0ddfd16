"""Smooth random fields (B-spline value noise, fractal sums) that backgrounds are made of.
"""

from __future__ import annotations

import math

import numpy as np


def _bspline(t: np.ndarray) -> list[np.ndarray]:
    """Uniform cubic B-spline weights: smooth (C2) interpolation without the grid look of bilinear."""
    t2, t3 = t * t, t * t * t
    return [(1 - t) ** 3 / 6, (3 * t3 - 6 * t2 + 4) / 6, (-3 * t3 + 3 * t2 + 3 * t + 1) / 6, t3 / 6]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-variance noise correlated over about ``scale_px`` pixels.

    White noise on a coarse grid, interpolated by cubic B-spline: a few multiply-adds per pixel,
    far cheaper than filtering full-resolution noise, and numpy-only.
    """
    h, w = shape
    cell = max(float(scale_px), 1.0)
    grid = rng.standard_normal((int(h / cell) + 4, int(w / cell) + 4), dtype=np.float32)

    def axis(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
        pos = (np.arange(n, dtype=np.float32) + 0.5) / cell
        i = np.floor(pos).astype(np.intp)
        return i, _bspline((pos - i).astype(np.float32))

    ri, rw = axis(h)
    ci, cw = axis(w)
    # Columns first, on the small grid; the full-size pass then gathers whole rows, which stay
    # contiguous (gathering columns of a full-size array yields a slow, transposed layout).
    cols = sum(wk[None, :] * grid[:, ci + k] for k, wk in enumerate(cw))
    out = np.ascontiguousarray(rw[0][:, None] * cols[ri])
    for k in range(1, 4):
        out += rw[k][:, None] * cols[ri + k]
    sample = out[:: max(1, h // 128), :: max(1, w // 128)]  # a sample fixes the scale as well as all
    out -= sample.mean()
    out /= sample.std() + 1e-6
    return out


def _fbm(
    rng: np.random.Generator, shape: tuple[int, int], scales_px: list[float], amps: list[float]
) -> np.ndarray:
    """A sum of smooth-noise octaves, renormalised to unit variance."""
    out = sum(a * _smooth_noise(rng, shape, s) for s, a in zip(scales_px, amps))
    return out / (math.sqrt(sum(a * a for a in amps)) + 1e-12)


def _quantile(field: np.ndarray, q: float) -> float:
    # A strided sample is plenty for a threshold and keeps this off the critical path at 1024 px.
    step = max(1, min(field.shape) // 256)
    return float(np.quantile(field[::step, ::step], q))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _shift(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``out[r, c] = a[r - dr, c - dc]``, with indices clamped to the edge.

    Clamping rather than zero fill: a shadow cast from beyond the scene continues smoothly instead
    of stopping at a straight line that no real cloud shadow has.
    """
    h, w = a.shape
    rows = np.clip(np.arange(h) - dr, 0, h - 1)
    cols = np.clip(np.arange(w) - dc, 0, w - 1)
    return a[np.ix_(rows, cols)]
