"""Overlap tiling, ownership windows, push-broom timing and fault specs (no sockets)."""

from __future__ import annotations

import numpy as np
import pytest

from flightsim.faults import FaultSpec
from flightsim.tiles import Tile, owned_windows, tile_grid
from flightsim.timing import Timing
from affine import Affine


@pytest.mark.parametrize("overlap", [0, 16, 40])
def test_owned_windows_partition_the_image(overlap: int) -> None:
    h, w = 300, 230
    grid = tile_grid(h, w, 64, overlap)
    cover = np.zeros((h, w), np.int32)
    for (r, c, th, tw), (orow, ocol, oh, ow) in zip(grid, owned_windows(grid)):
        assert th <= 64 and tw <= 64
        assert r <= orow and orow + oh <= r + th and c <= ocol and ocol + ow <= c + tw
        cover[orow:orow + oh, ocol:ocol + ow] += 1
    assert (cover == 1).all()
    if overlap:
        assert all(th == 64 and tw == 64 for _, _, th, tw in grid)  # the last tiles are pulled back


def test_overlap_must_be_smaller_than_a_tile() -> None:
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 64\)"):
        tile_grid(100, 100, 64, 64)


def _tiles(rows: list[int], cols: int = 2) -> list[Tile]:
    return [Tile("s", f"s/r{r}c{c}", 0, np.zeros((1, 8, 8), np.uint8), Affine.identity(), None, (r, c * 8, 8, 8))
            for r in rows for c in range(cols)]


def test_pushbroom_timing_bursts_by_tile_row() -> None:
    timing = Timing("pushbroom", line_rate_hz=100.0, epoch=1000.0)
    tiles = list(timing.apply([(_tiles([0, 8]), 16, None), (_tiles([0]), 8, None)]))
    ready = [t.ready_s for t in tiles]
    assert ready == [0.08, 0.08, 0.16, 0.16, 0.24, 0.24]  # a tile row is a burst; scenes stack
    assert [t.time for t in tiles[:3]] == pytest.approx([1000.04, 1000.04, 1000.12])
    # Line rate from the gsd when not given: 7 km/s over 3 m.
    assert Timing().line_rate(3.0) == pytest.approx(7000.0 / 3.0)


def test_rate_timing_in_bursts() -> None:
    tiles = list(Timing("rate", rate_hz=10.0, burst=3).apply([(_tiles([0, 8, 16], cols=2), 24, None)]))
    assert [t.ready_s for t in tiles] == pytest.approx([0, 0, 0, 0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match=r"unknown timing mode 'warp'; valid: \['asap', 'rate', 'pushbroom'\]"):
        Timing("warp")


def test_fault_spec_parsing() -> None:
    spec = FaultSpec.parse("drop=0.05,duplicate=0.02,corrupt=0.02,truncate=0.01,bad_checksum=0.01,reorder=0.05,"
                           "restart=1@40,seed=3")
    assert spec.rates["drop"] == 0.05 and spec.restarts == 1 and spec.restart_every == 40 and spec.seed == 3
    assert FaultSpec.parse(str(spec)).rates == spec.rates
    for bad, message in (("explode=0.1", "unknown fault 'explode'; valid:"), ("drop=2", r"must be in \[0, 1\]"),
                         ("drop=0.7,duplicate=0.6", "add up to 1.300"), ("restart=40", "expected N@K"),
                         ("drop", "not kind=value")):
        with pytest.raises(ValueError, match=message):
            FaultSpec.parse(bad)


@pytest.mark.parametrize("n", [119, 120, 121])
def test_overlapping_tiles_reach_the_last_row_and_column(n: int) -> None:
    """With 64 px tiles overlapping by 8 (a step of 56) the first two tiles end at 120: an image one
    pixel wider or taller needs a third, pulled back to end at its edge, or its last pixel goes unseen."""
    grid = tile_grid(n, n, 64, 8)
    cover = np.zeros((n, n), bool)
    for r, c, h, w in grid:
        cover[r:r + h, c:c + w] = True
    assert cover.all()
    assert max(r + h for r, _, h, _ in grid) == n and max(c + w for _, c, _, w in grid) == n
