"""With overlapping tiles, a vessel two tiles saw whole is judged in flight by the tile owning its
centroid (``hil.merge.tile_pieces``): the ground's row must come from that tile
(``search.discriminate._judging_tile``). The centroid is the outline's, its pixels' centres half a pixel
past their indices: from the indices' mean, a vessel whose centroid lies just past an ownership line was
measured on the tile before it, with the other tile's score."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from flightsim.tiles import owned_windows, tile_grid
from hil.merge import owned_box, tile_pieces
from runtime.vectorize import tile_borders, vectorize
from search.discriminate import _judging_tile


def _kept_from(burnt: np.ndarray, grid: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The tiles whose copy of ``burnt`` the ground keeps, each tile vectorised as the payload does."""
    identity = Affine.identity()
    tiles = []
    for window, owned in zip(grid, owned_windows(grid)):
        row, col, h, w = window
        prob = burnt[row:row + h, col:col + w].astype(np.float32)
        features = vectorize(prob, 0.5, Affine.translation(col, row), None, min_area_px=1,
                             borders=tile_borders(list(window), (h, w), (h, w))) if prob.any() else []
        for f in features:
            f["properties"]["tile"] = window
        tiles.append((features, owned_box(identity, window), owned_box(identity, owned)))
    pieces = tile_pieces(tiles, owned_box(identity, (0, 0, *burnt.shape)), None, 1.0)
    return [p["properties"]["tile"] for p in pieces]


@pytest.mark.parametrize("rows", [((55, 2), (56, 6)),   # index mean 55.75, centroid 56.25: past the line at 56
                                  ((55, 4), (56, 4)),   # centroid on the line: the earlier tile's
                                  ((56, 2), (55, 6))])  # centroid 55.75: before it
def test_a_vessel_seen_whole_by_two_tiles_is_judged_by_the_one_the_ground_keeps(
        rows: tuple[tuple[int, int], ...]) -> None:
    grid = tile_grid(128, 128, 64, overlap=16)  # tiles at rows 0 and 48 share rows 48-63, owned up to 56
    burnt = np.zeros((128, 128), bool)
    for r, n in rows:
        burnt[r, 10:10 + n] = True
    kept = _kept_from(burnt, grid)
    assert len(kept) == 1
    assert _judging_tile(burnt, grid, owned_windows(grid)) == kept[0]
