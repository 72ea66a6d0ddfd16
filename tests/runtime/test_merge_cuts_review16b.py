"""Review: a border piece the second stage passed is never dropped by the merge for the pixels or the
score of pieces the stage failed (docs/protocol.md, "Results": "the merge never drops a piece the stage
passed"). The payload's path is run for real: each tile vectorised alone with a real logistic second
stage and the model's ``min_score``, then the ground's merge."""

import numpy as np
import pytest
from affine import Affine

from runtime.discriminate import Discriminator
from runtime.merge import BORDER_RULES, merge_detections
from runtime.vectorize import tile_borders, vectorize

TILE = 20
#: passes a component whose mean probability (``score``) is 0.7 or more, fails one under it
BY_SCORE = Discriminator(("score",), (0.7,), (1.0,), (100.0,), 0.0, 0.5)


def _on_board(prob: np.ndarray, min_score: float, rule: str) -> list[dict]:
    pieces = []
    for col in (0, TILE):
        tile = np.ascontiguousarray(prob[:, col:col + TILE])
        window = (0, col, tile.shape[0], TILE)
        pieces += vectorize(tile, 0.4, Affine.translation(col, 0), None, min_area_px=4, min_score=min_score,
                            valid=tile.shape, borders=tile_borders(window, tile.shape, tile.shape),
                            image=(tile * 200).astype(np.uint8), discriminator=BY_SCORE)
    return merge_detections(pieces, None, tolerance=0.01, border_rule=rule)


def _vessel(left_cols: int, left_p: float, right_cols: int, right_p: float) -> np.ndarray:
    """One vessel (rows 3-6) across the border at column 20: ``left_cols`` columns at ``left_p`` left of
    it, ``right_cols`` at ``right_p`` right of it."""
    prob = np.zeros((10, 2 * TILE), np.float32)
    prob[3:7, TILE - left_cols:TILE] = left_p
    prob[3:7, TILE:TILE + right_cols] = right_p
    return prob


@pytest.mark.parametrize("rule", ["largest-else-passed", "piecewise", "any"])
def test_a_passed_piece_is_not_dropped_for_the_score_of_a_larger_failed_piece(rule: str) -> None:
    """The left piece (24 px at 0.95) passes the stage and ``min_score`` 0.8 on its own, as the payload
    delivered it before 2026-12-05; the larger right piece (40 px at 0.5) fails the stage. The merge
    judged the whole vessel's score (0.67) first and dropped both."""
    got = _on_board(_vessel(6, 0.95, 10, 0.5), 0.8, rule)
    assert [(f["properties"]["area_px"], f["properties"]["pieces"]) for f in got] == [(24, 1)]
    assert got[0]["properties"]["ship_probability"] >= BY_SCORE.cut
    assert not any(k.startswith("provisional") for k in got[0]["properties"])


@pytest.mark.parametrize("rule", ["largest-else-passed", "piecewise", "any"])
def test_a_passed_largest_piece_is_not_dropped_for_the_score_of_a_smaller_failed_piece(rule: str) -> None:
    """The right piece (32 px at 0.95, the largest) passes the stage and ``min_score`` 0.8; the left
    piece (24 px at 0.5) fails the stage, and with it the whole vessel's score is 0.76: the pieces that
    passed come down, as they did before 2026-12-05, not nothing."""
    got = _on_board(_vessel(6, 0.5, 8, 0.95), 0.8, rule)
    assert [(f["properties"]["area_px"], f["properties"]["pieces"]) for f in got] == [(32, 1)]


def test_a_whole_vessel_under_min_score_is_still_dropped() -> None:
    """Both pieces pass the stage (0.75 and 0.72) and the vessel's score (0.73) is under ``min_score``
    0.8: dropped whole under every rule, as before."""
    for rule in BORDER_RULES:
        assert _on_board(_vessel(6, 0.75, 8, 0.72), 0.8, rule) == []
