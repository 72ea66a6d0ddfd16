"""Review: vessels seen whole by a tile that does not own their centre (hil.merge.tile_pieces), where
the owner saw them only as a piece cut at its own border. Each tile is vectorised for real, as the
payload does (runtime.vectorize with the borders of its header's window), then the ground's merge."""

from __future__ import annotations

import numpy as np
from affine import Affine

from flightsim.tiles import owned_windows, tile_grid
from hil.merge import owned_box, tile_pieces, whole_vessels
from runtime.vectorize import tile_borders, vectorize


def _scene(prob: np.ndarray, size: int, overlap: int) -> list[dict]:
    height, width = prob.shape
    windows = tile_grid(height, width, size, overlap)
    answered = []
    for window, owned in zip(windows, owned_windows(windows)):
        row, col, h, w = window
        tile = np.ascontiguousarray(prob[row:row + h, col:col + w])
        features = vectorize(tile, 0.5, Affine.translation(col, row), None, min_area_px=4,
                             borders=tile_borders(list(window), (h, w), (size, size)))
        answered.append((features, owned_box(Affine.identity(), window), owned_box(Affine.identity(), owned)))
    pieces = tile_pieces(answered, owned_box(Affine.identity(), (0, 0, height, width)), None, 1.0)
    return whole_vessels(pieces, None, tolerance=0.01)


def test_a_vessel_reaching_the_owners_border_inside_the_overlap_is_not_cut_short() -> None:
    """Tiles 0-99 and 80-179 (ownership line at 90). The vessel over columns 80-98 is whole in the
    left tile, a piece in the right one (it reaches its border at column 80), whose owned part holds
    its centre: the right tile's window holds it, so the left copy was taken for seen whole there and
    dropped, and the right tile's piece, clipped at 90, came down 9 px long instead of 19."""
    prob = np.zeros((100, 180), np.float32)
    prob[40:44, 80:99] = 0.9
    prob[44:50, 92:99] = 0.9  # mass right of the line: the centre is the right tile's
    got = _scene(prob, 100, 20)
    assert [(f["properties"]["area_px"], f["properties"]["length_m"]) for f in got] == [(118, 19.0)]


def test_a_vessel_two_non_owners_saw_whole_at_a_corner_is_counted_once() -> None:
    """Four tiles overlapping by 20 px. The vessel is whole in the two left tiles and a piece (cut at
    column 80) in the two right ones, the top-right owning its centre: both whole copies were kept and
    merged, its pixels summed twice (160 of 80) and ``pieces`` 2."""
    prob = np.zeros((180, 180), np.float32)
    prob[82:89, 91:99] = 0.9
    prob[85:87, 79:91] = 0.9  # a tail across column 80, the right tiles' left border
    got = _scene(prob, 100, 20)
    assert [(f["properties"]["area_px"], f["properties"]["pieces"]) for f in got] == [(80, 1)]
