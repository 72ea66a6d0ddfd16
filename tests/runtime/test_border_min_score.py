"""A vessel cut by a tile border is judged by ``min_score`` as a whole, as the search chose the cut.

The search chooses ``output.min_score`` (``search.evaluate.object_scores``) on whole-scene maps,
where a vessel's score is the mean probability of all its pixels. On board each tile is
vectorised alone; a border piece whose own mean is under the cut must not be dropped before the
ground merges it (and one whose own mean passes must not stand for a vessel whose whole mean
fails), or the payload downlinks other vessels than the ones the cut was chosen on.
"""

import numpy as np
import pytest
from affine import Affine

from runtime.merge import merge_detections
from runtime.vectorize import tile_borders, vectorize

TILE = 20


def _scene(left_p: float, right_p: float) -> np.ndarray:
    """A 10 x 40 probability map with one vessel (rows 3-6, columns 14-25) across the tile border at
    column 20: its left piece (6 columns) at ``left_p``, its right piece (6 columns) at ``right_p``."""
    prob = np.zeros((10, 2 * TILE), np.float32)
    prob[3:7, 14:20] = left_p
    prob[3:7, 20:26] = right_p
    return prob


def _on_board(prob: np.ndarray, min_score: float) -> list[dict]:
    """The payload's path: each tile vectorised alone (borders as the server sets them), then the
    ground's merge (hil, ``runtime infer``)."""
    pieces = []
    for col in (0, TILE):
        tile = np.ascontiguousarray(prob[:, col:col + TILE])
        window = (0, col, tile.shape[0], TILE)
        pieces += vectorize(tile, 0.4, Affine.translation(col, 0), None, min_area_px=4, min_score=min_score,
                            valid=tile.shape, borders=tile_borders(window, tile.shape, tile.shape))
    return merge_detections(pieces, None, tolerance=0.01)


def _whole_scene(prob: np.ndarray, min_score: float) -> list[dict]:
    """What the search scored when it chose the cut (search.evaluate.object_scores: whole maps)."""
    return vectorize(prob, 0.4, Affine.identity(), None, min_area_px=4, min_score=min_score)


@pytest.mark.parametrize("left_p, right_p", [(0.95, 0.80),   # whole mean 0.875 < 0.9: no vessel
                                              (0.85, 0.99)])  # whole mean 0.92 >= 0.9: the whole vessel
def test_min_score_judges_the_merged_vessel(left_p: float, right_p: float) -> None:
    prob = _scene(left_p, right_p)
    whole = _whole_scene(prob, 0.9)
    board = _on_board(prob, 0.9)
    assert len(board) == len(whole)
    for b, w in zip(board, whole):
        assert b["properties"]["area_px"] == w["properties"]["area_px"]
        assert b["properties"]["score"] == pytest.approx(w["properties"]["score"])
        assert not any(k.startswith("provisional") for k in b["properties"])


def test_a_lone_border_piece_under_the_cut_is_still_dropped() -> None:
    """A piece at a tile border with no neighbour to merge with is judged on its own score."""
    prob = np.zeros((10, TILE), np.float32)
    prob[3:7, 14:20] = 0.5
    window = (0, 0, 10, TILE)
    pieces = vectorize(prob, 0.4, Affine.identity(), None, min_area_px=4, min_score=0.9,
                       valid=prob.shape, borders=tile_borders(window, prob.shape, prob.shape))
    assert merge_detections(pieces, None, tolerance=0.01) == []
