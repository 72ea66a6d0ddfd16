"""flightsim.sources.base.block_means in strips (review of 2026-12-05).

It reduced the rows of the whole image first, with ``np.add.reduceat(..., dtype=np.float64)``, which
casts its whole input to float64 before it sums: 8 bytes a pixel a band, 384 MB for a 3 x 4000 x 4000
uint8 scene and 9.6 GB for a 20000 x 20000 one, to draw an overview picture of a few hundred pixels.
Reduced strip by strip of output rows (and, for a strip of few tall blocks, by columns), its extra
memory is the output and one strip, and every output pixel is the same sum in the same order, so the
result is the same bit for bit; the old implementation is kept here as the reference.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from flightsim.sources import base
from flightsim.sources.base import block_means


def old_block_means(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """block_means as it was before the review: whole-image passes, the reference for the values."""
    out = img
    for axis, n in ((1, out_hw[0]), (2, out_hw[1])):
        size = out.shape[axis]
        edges = (np.arange(n + 1) * size) // n
        sums = np.add.reduceat(out, edges[:-1], axis=axis, dtype=np.float64)
        shape = [1, 1, 1]
        shape[axis] = n
        out = sums / np.diff(edges).reshape(shape)
    return out.astype(np.float32)


def _image(rng: np.random.Generator, dtype: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Random pixels of ``dtype`` over its range (float32: wide magnitudes, so that order shows)."""
    if dtype == "float32":
        return (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 6, shape)).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True, dtype=dtype)


SHAPES = [(1, 1, 1), (1, 7, 5), (3, 13, 17), (4, 101, 37), (2, 37, 211), (3, 257, 129), (1, 300, 1), (1, 1, 300)]


def _out_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """Awkward output sizes: 1, the whole side, one under it, near its half and a prime share."""
    hs = sorted({1, height, max(1, height - 1), max(1, height // 2 + 1), max(1, height // 7)})
    ws = sorted({1, width, max(1, width - 1), max(1, width // 2 + 1), max(1, width // 7)})
    return [(h, w) for h in hs for w in ws]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("strip_values", [None, 1, 37, 500])
def test_the_values_are_the_old_ones_bit_for_bit(dtype: str, strip_values: int | None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The strip budget made tiny (1 value: one column of one block at a time) as well as the shipped
    # one, so that the strips, their column chunks and their joins are all compared on small images.
    if strip_values is not None:
        monkeypatch.setattr(base, "BLOCK_MEANS_STRIP_VALUES", strip_values)
    rng = np.random.default_rng(26)
    for shape in SHAPES:
        img = _image(rng, dtype, shape)
        for out_hw in _out_shapes(shape[1], shape[2]):
            got, want = block_means(img, out_hw), old_block_means(img, out_hw)
            assert got.dtype == np.float32 and got.shape == (shape[0], *out_hw)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                          err_msg=f"{dtype} {shape} -> {out_hw}")


def test_a_view_of_a_scene_is_reduced_as_a_copy_would_be() -> None:
    """A window of a loaded scene (``Sample.read`` of a window returns a view) gives the same values."""
    rng = np.random.default_rng(5)
    img = _image(rng, "float32", (3, 90, 120))[:, 7:80:2, 3:111]
    for out_hw in [(1, 1), (5, 9), (37, 108)]:
        np.testing.assert_array_equal(block_means(img, out_hw).view(np.uint32),
                                      old_block_means(np.ascontiguousarray(img), out_hw).view(np.uint32))


def test_peak_memory_is_a_strip_not_the_scene_in_float64() -> None:
    img = np.random.default_rng(0).integers(0, 256, (3, 4000, 4000), dtype=np.uint8)
    tracemalloc.start()
    try:
        out = block_means(img, (40, 40))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (3, 40, 40)
    # the old way peaked at the scene in float64 (384 MB); the image itself is 48 MB and not counted
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("out_hw", [(1, 1), (4000, 1), (1, 4000)])
def test_peak_memory_is_bounded_for_one_tall_or_wide_block(out_hw: tuple[int, int]) -> None:
    """A single output row (or column) is a block of the whole height: it is reduced by columns too."""
    img = np.random.default_rng(1).integers(0, 256, (3, 4000, 4000), dtype=np.uint8)
    tracemalloc.start()
    try:
        block_means(img, out_hw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out_bytes = 3 * out_hw[0] * out_hw[1] * 4
    assert peak < out_bytes * 3 + 20e6, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("out_hw", [(0, 3), (3, 0), (9, 3), (3, 9), (-1, 2)])
def test_an_output_larger_than_the_image_or_empty_is_refused(out_hw: tuple[int, int]) -> None:
    """More output rows than image rows had empty blocks, 0 / 0 (NaN) or x / 0 (inf) in the picture."""
    with pytest.raises(ValueError, match="valid"):
        block_means(np.zeros((1, 8, 8), np.uint8), out_hw)
