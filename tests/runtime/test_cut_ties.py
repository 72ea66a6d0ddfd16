"""The payload's cuts at their exact values, and the merge's area-weighted score.

Model outputs in FP16 or from a quantised model take few values, so a pixel at exactly the threshold,
a vessel whose mean probability is exactly ``min_score`` or one exactly ``min_area_px`` pixels large
are common. The search chose each cut with ``>=`` (search.evaluate: ``p >= threshold``, ``area >=
min_area``, ``score >= min_score``), so the payload and the ground's merge must keep such a vessel,
whether it lies in one tile or across a tile border.
"""

import numpy as np
import pytest
from affine import Affine

from runtime.merge import merge_detections
from runtime.vectorize import tile_borders, vectorize

TILE = 20


def _on_board(prob: np.ndarray, **cuts: float) -> list[dict]:
    """Two 20-column tiles vectorised alone (borders as the server sets them), then merged on the ground."""
    pieces = []
    for col in (0, TILE):
        tile = np.ascontiguousarray(prob[:, col:col + TILE])
        window = (0, col, tile.shape[0], TILE)
        pieces += vectorize(tile, 0.4, Affine.translation(col, 0), None, valid=tile.shape,
                            borders=tile_borders(window, tile.shape, tile.shape), **cuts)
    return merge_detections(pieces, None, tolerance=0.01)


def test_a_pixel_at_exactly_the_threshold_is_vessel() -> None:
    prob = np.zeros((10, 10), np.float32)
    prob[2:6, 2:6] = 0.5
    features = vectorize(prob, 0.5, Affine.identity(), None)
    assert [f["properties"]["area_px"] for f in features] == [16]


def test_a_vessel_at_exactly_min_score_is_kept() -> None:
    prob = np.zeros((10, 10), np.float32)
    prob[2:6, 2:6] = 0.75
    features = vectorize(prob, 0.4, Affine.identity(), None, min_score=0.75)
    assert [f["properties"]["score"] for f in features] == [0.75]


def test_a_vessel_across_a_border_at_exactly_min_score_is_kept_by_the_merge() -> None:
    prob = np.zeros((10, 2 * TILE), np.float32)
    prob[3:7, 16:24] = 0.75
    merged = _on_board(prob, min_score=0.75)
    assert [(f["properties"]["area_px"], f["properties"]["score"]) for f in merged] == [(32, 0.75)]


def test_a_vessel_across_a_border_of_exactly_min_area_px_is_kept_by_the_merge() -> None:
    prob = np.zeros((10, 2 * TILE), np.float32)
    prob[4, 18:22] = 0.9  # 2 pixels each side: pieces under the cut, the vessel at it
    merged = _on_board(prob, min_area_px=4)
    assert [f["properties"]["area_px"] for f in merged] == [4]


def test_merged_pieces_score_their_mean_weighted_by_area() -> None:
    """The merged vessel's score is the mean probability of all its pixels, as on the whole scene."""
    prob = np.zeros((10, 2 * TILE), np.float32)
    prob[3:7, 16:20] = 0.5    # 16 pixels
    prob[3:7, 20:28] = 0.875  # 32 pixels
    merged = _on_board(prob)
    whole = vectorize(prob, 0.4, Affine.identity(), None)
    assert len(merged) == len(whole) == 1
    assert merged[0]["properties"]["score"] == pytest.approx(whole[0]["properties"]["score"]) == pytest.approx(0.75)
