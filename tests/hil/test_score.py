"""hil.score produces every reported figure: object matching and the rules for empty sets."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon, box

from hil.score import match_objects, percentiles, pixel_counts, pixel_scores, pooled_scores


def test_a_pair_counts_at_the_iou_threshold_and_not_below() -> None:
    truth = [box(0, 0, 10, 10)]
    exactly_half = [box(0, 0, 10, 5)]        # IoU 50 / 100 = 0.5
    just_under = [box(0, 0, 10, 4.99)]
    assert match_objects(exactly_half, truth, 0.5)["true_positives"] == 1
    r = match_objects(just_under, truth, 0.5)
    assert r["true_positives"] == 0 and r["false_positives"] == 1 and r["false_negatives"] == 1
    assert r["precision"] == 0.0 and r["recall"] == 0.0 and r["f1"] == 0.0


def test_matching_is_one_to_one_best_pairs_first() -> None:
    truth = [box(0, 0, 10, 10), box(20, 0, 30, 10)]
    # Two detections on the first ship: the better one is matched, the other is a false positive.
    pred = [box(0, 0, 10, 8), box(0, 0, 10, 10), box(20, 0, 30, 10)]
    r = match_objects(pred, truth, 0.5)
    assert sorted(r["matched_pairs"]) == [(1, 0), (2, 1)]
    assert r["true_positives"] == 2 and r["false_positives"] == 1 and r["false_negatives"] == 0
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 1.0
    assert r["f1"] == pytest.approx(0.8) and r["matched_mean_iou"] == pytest.approx(1.0)
    assert r["matched_indices"] == [1, 2]


def test_one_detection_spanning_two_ships_matches_at_most_one() -> None:
    truth = [box(0, 0, 10, 10), box(10, 0, 20, 10)]
    r = match_objects([box(0, 0, 20, 10)], truth, 0.3)  # IoU 0.5 with each
    assert r["true_positives"] == 1 and r["false_negatives"] == 1


# A self-intersecting "bowtie": two triangles of 25 each, touching at (5, 5); GEOS refuses to
# intersect it as it is (GEOSException: TopologyException).
BOWTIE = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])


@pytest.mark.parametrize("side", ["truth", "pred"])
def test_an_invalid_polygon_on_either_side_is_matched_by_its_valid_area(side: str) -> None:
    """One bad outline must not lose a run's scores: it is matched by the area of its lobes."""
    assert not BOWTIE.is_valid
    other = [box(0, 0, 10, 10), box(50, 50, 60, 60)]
    pred, truth = ([BOWTIE], other) if side == "pred" else (other, [BOWTIE])
    r = match_objects(pred, truth, 0.5)
    assert r["true_positives"] == 1 and r["matched_mean_iou"] == pytest.approx(0.5)  # 50 of 100
    assert r["n_predicted"] == len(pred) and r["n_truth"] == len(truth)
    # a pure line left by make_valid covers nothing: it matches nothing, and does not raise
    spike = Polygon([(0, 0), (10, 0), (10, 0), (20, 0), (0, 0)])
    assert match_objects([spike], [box(0, 0, 10, 10)], 0.1)["true_positives"] == 0


@pytest.mark.parametrize(("n_pred", "n_truth", "precision", "recall", "f1"), [
    (0, 0, 1.0, 1.0, 1.0),   # nothing there, nothing found: perfect
    (2, 0, 0.0, 1.0, 0.0),   # false alarms on an empty scene: precision 0
    (0, 2, 0.0, 0.0, 0.0),   # ships missed, nothing claimed: recall 0, and precision 0 too
])
def test_empty_set_rules(n_pred: int, n_truth: int, precision: float, recall: float, f1: float) -> None:
    pred = [box(100 * i, 0, 100 * i + 5, 5) for i in range(n_pred)]
    truth = [box(100 * i, 50, 100 * i + 5, 55) for i in range(n_truth)]
    r = match_objects(pred, truth, 0.5)
    assert (r["precision"], r["recall"], r["f1"]) == (precision, recall, f1)
    assert r["matched_mean_iou"] is None and r["true_positives"] == 0
    # Pooled over images, the same rules hold for the totals.
    pooled = pooled_scores([], [r])
    assert (pooled["precision"], pooled["recall"], pooled["f1"]) == (precision, recall, f1)


def test_pixel_scores_and_their_empty_classes() -> None:
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True
    pred = np.zeros((4, 4), bool)
    pred[:2, :3] = True
    s = pixel_scores(pred, truth)
    assert s["vessel_iou"] == pytest.approx(4 / 6) and s["background_iou"] == pytest.approx(10 / 12)
    assert s["miou"] == pytest.approx((4 / 6 + 10 / 12) / 2)
    empty = pixel_scores(np.zeros((4, 4)), np.zeros((4, 4)))
    assert empty["vessel_iou"] == 1.0 and empty["miou"] == 1.0   # no vessel in either: perfect
    missed = pixel_scores(np.zeros((4, 4)), truth)
    assert missed["vessel_iou"] == 0.0


def test_pooled_pixel_scores_weigh_pixels_not_images() -> None:
    from hil.score import pixel_counts

    big_t = np.zeros((10, 10), bool)
    big_t[:5] = True                      # 50 vessel pixels, all found
    small_t = np.zeros((10, 10), bool)
    small_t[0, 0] = True                  # 1 vessel pixel, missed
    counts = [pixel_counts(big_t, big_t), pixel_counts(np.zeros_like(small_t), small_t)]
    assert pooled_scores(counts, [])["vessel_iou"] == pytest.approx(50 / 51)


def test_percentiles_of_nothing_are_none() -> None:
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    assert percentiles([1.0, 3.0])["p50"] == 2.0


def test_one_data_set_of_several_is_pooled_from_its_own_images() -> None:
    """scripts/seed_study.py scores each data set of a split apart: objects and pixels pooled over
    that set's images only (pixels from the counts each image of a report keeps)."""
    from scripts.seed_study import _pool

    a = pixel_counts(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))
    b = pixel_counts(np.array([[0, 0], [0, 0]]), np.array([[0, 0], [1, 1]]))
    rows = [{"true_positives": 1, "n_predicted": 2, "n_truth": 1, "pixel_counts": a, "outline_pixel_counts": b},
            {"true_positives": 0, "n_predicted": 0, "n_truth": 1, "pixel_counts": b, "outline_pixel_counts": b}]
    pooled = _pool(rows)
    assert (pooled["precision"], pooled["recall"]) == (0.5, 0.5)
    assert pooled["vessel_iou"] == pytest.approx(1 / 4)        # 1 shared pixel of 2 + 2 vessel pixels
    assert pooled["outline_vessel_iou"] == 0.0
    assert "vessel_iou" not in _pool([{"true_positives": 0, "n_predicted": 0, "n_truth": 0}])


def test_pooled_scores_count_false_alarms_and_misses_apart() -> None:
    """Three detections, one true, over two truths: 2 false positives, 1 false negative, not the reverse."""
    r = match_objects([box(0, 0, 10, 10), box(50, 50, 60, 60), box(80, 80, 90, 90)],
                      [box(0, 0, 10, 10), box(20, 20, 30, 30)], 0.5)
    pooled = pooled_scores([], [r])
    assert (pooled["true_positives"], pooled["false_positives"], pooled["false_negatives"]) == (1, 2, 1)
    assert (pooled["precision"], pooled["recall"]) == pytest.approx((1 / 3, 1 / 2))
