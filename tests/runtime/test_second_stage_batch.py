"""The second stage's fast paths give the answers of the plain ones, bit for bit: the trees read
through their leaf masks against the node-by-node walk, a tile's candidates judged in one call
against each alone, and the shared intensity crop against each candidate's own window. The
shipped stage (models/sar) was fitted on the plain paths' features and scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from runtime.discriminate import TreeDiscriminator, discriminator_from_manifest
from runtime.candidate_features import FEATURES, _p90, component_features, tile_features
from runtime.vectorize import vectorize

REPO = Path(__file__).resolve().parents[2]


def _bits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, np.float64).view(np.int64)


def _random_tree(rng: np.random.Generator, n_features: int, depth: int) -> dict[str, np.ndarray]:
    arrays: dict[str, list] = {name: [] for name in ("feature", "threshold", "left", "right", "value")}

    def grow(level: int) -> int:
        node = len(arrays["feature"])
        for name, v in (("feature", 0), ("threshold", 0.0), ("left", -1), ("right", -1), ("value", 0.0)):
            arrays[name].append(v)
        if level > 0 and rng.random() < 0.8:
            arrays["feature"][node] = int(rng.integers(n_features))
            arrays["threshold"][node] = float(np.round(rng.normal(), 1))  # shared thresholds, ties with rows
            left = grow(level - 1)
            arrays["left"][node], arrays["right"][node] = left, grow(level - 1)
        else:
            arrays["value"][node] = float(rng.normal())
        return node

    grow(depth)
    return {name: np.array(v) for name, v in arrays.items()}


def test_the_leaf_masks_give_the_walks_scores_for_the_shipped_stage() -> None:
    """Rows on, just below and just above every threshold the shipped trees test, with NaN and
    infinities: the same probability as walking each tree, to the last bit, one row or many."""
    stage = discriminator_from_manifest(json.loads((REPO / "models/sar/manifest.json").read_text())["output"]
                                        ["discriminator"])
    assert isinstance(stage, TreeDiscriminator) and stage._masks is not None
    tested: dict[int, list[float]] = {}
    for tree in stage.trees:
        for f, t, left in zip(tree["feature"], tree["threshold"], tree["left"]):
            if left >= 0:
                tested.setdefault(int(f), []).append(float(t))
    rng = np.random.default_rng(0)
    rows = rng.normal(0, 3, (2000, len(FEATURES)))
    for i, name in enumerate(stage.features):
        column = FEATURES.index(name)
        if i in tested:
            on = rng.choice(tested[i], len(rows))
            rows[:, column] = on + rng.choice([-1, 0, 0, 1], len(rows)) * np.spacing(on)
        rows[rng.random(len(rows)) < 0.02, column] = rng.choice([np.nan, np.inf, -np.inf, -0.0])
    x = rows[:, [FEATURES.index(f) for f in stage.features]]
    walked = 1.0 / (1.0 + np.exp(-stage._walk(x)))
    assert np.array_equal(_bits(stage.probability(rows)), _bits(walked))
    assert np.array_equal(_bits([stage.probability(r[None])[0] for r in rows[:200]]), _bits(walked[:200]))
    assert stage.probability(rows[:0]).shape == (0,)


def test_the_leaf_masks_give_the_walks_scores_for_any_tree_and_step_aside_where_they_cannot() -> None:
    """Random ensembles: lone leaves, shared thresholds, NaN rows; trees of more than 64 leaves and
    a node with two parents (which the manifest's checks allow) are walked instead."""
    rng = np.random.default_rng(1)
    walked_instead = 0
    for _ in range(300):
        names = tuple(rng.choice(FEATURES, int(rng.integers(1, 5)), replace=False))
        trees = tuple(_random_tree(rng, len(names), int(rng.integers(0, 8))) for _ in range(int(rng.integers(1, 12))))
        stage = TreeDiscriminator(names, float(rng.normal()), trees, 0.5)
        walked_instead += stage._masks is None
        rows = np.round(rng.normal(0, 1, (int(rng.integers(0, 20)), len(FEATURES))), 1)
        rows[rng.random(rows.shape) < 0.05] = np.nan
        x = rows[:, [FEATURES.index(f) for f in names]]
        assert np.array_equal(_bits(stage.probability(rows)), _bits(1.0 / (1.0 + np.exp(-stage._walk(x)))))
    assert 0 < walked_instead < 300  # both paths were taken
    shared = {"feature": np.array([0, 0, 1, 1, 0]), "threshold": np.array([0.0, 0.0, 1.0, 0.0, 0.0]),
              "left": np.array([1, 3, 4, -1, -1]), "right": np.array([2, 4, 4, -1, -1]),
              "value": np.array([0.0, 0.0, 0.0, 1.0, 2.0])}  # node 4 has three ways in
    stage = TreeDiscriminator(("contrast", "fill"), 0.0, (shared,), 0.5)
    assert stage._masks is None
    rows = np.zeros((3, len(FEATURES)))
    rows[:, FEATURES.index("contrast")] = [-1.0, 1.0, 0.0]
    assert stage.probability(rows) == pytest.approx(1 / (1 + np.exp(-np.array([1.0, 2.0, 1.0]))))


def test_the_p90_of_values_with_nan_is_the_order_statistics_with_nan_last() -> None:
    """NaN sorts last, as the partition puts it: the 90th percentile is a number while the
    values it is drawn from are (a float tile with holes), NaN only where they are not."""
    rng = np.random.default_rng(2)
    for _ in range(2000):
        x = rng.normal(0, 1, int(rng.integers(1, 200)))
        x[rng.random(x.size) < rng.random()] = np.nan
        ordered = np.sort(x)  # NaN last
        virtual = (x.size - 1) * 0.9
        lo = int(virtual)
        a, b = ordered[lo], ordered[min(lo + 1, x.size - 1)]
        gamma = virtual - lo
        want = b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma
        got = _p90(x)
        assert got == want or (np.isnan(got) and np.isnan(want))


@pytest.mark.parametrize("bands", [3, 0])
def test_a_tiles_candidates_get_the_features_each_gets_alone(bands: int) -> None:
    """Crowded candidates (one shared crop of the bands' mean) and scattered ones (each its own
    window), at the tile's edges too, as (bands, H, W) counts and as one (H, W) band."""
    rng = np.random.default_rng(3)
    for crowded in (True, False):
        shape = (256, 256) if not bands else (bands, 256, 256)
        image = rng.integers(0, 256, shape).astype(np.uint8 if bands else np.float64)
        candidates = []
        for _ in range(int(rng.integers(1, 12))):
            h, w = (int(v) for v in rng.integers(1, 30, 2))
            top = int(rng.integers(100, 140)) if crowded else int(rng.choice([0, 256 - h, rng.integers(0, 256 - h)]))
            left = int(rng.integers(100, 140)) if crowded else int(rng.choice([0, 256 - w, rng.integers(0, 256 - w)]))
            component = rng.random((h, w)) < 0.7
            component[0, 0] = True
            candidates.append((component, top, left, float(rng.random()), float(rng.random())))
        rows = tile_features(image, candidates, (2, 6))
        alone = np.array([component_features(image, *c, ring_px=(2, 6)) for c in candidates])
        assert np.array_equal(_bits(rows), _bits(alone)), crowded
    assert tile_features(image, [], (2, 6)).shape == (0, len(FEATURES))


def test_vectorize_judges_a_tiles_candidates_in_one_call_with_each_answer_in_its_place() -> None:
    """Each kept outline carries its own probability: the batch's order is the outlines' order."""
    prob = np.zeros((64, 64), np.float32)
    image = np.full((3, 64, 64), 10, np.uint8)
    for i, (r, c) in enumerate(((5, 5), (5, 40), (40, 5), (40, 40))):
        prob[r:r + 6, c:c + 12] = 0.9
        image[:, r:r + 6, c:c + 12] = 50 * (i + 1)  # brighter from one to the next

    class ByBrightness:
        """Keeps what is brighter than 120 inside; the probability is the brightness over 1000."""
        ring_px, cut, calls = (2, 6), 0.12, 0

        def probability(self, rows: np.ndarray) -> np.ndarray:
            ByBrightness.calls += 1
            return np.expm1(rows[:, FEATURES.index("log_inside")]) / 1000.0

    kept = vectorize(prob, 0.5, Affine.identity(), None, min_area_px=4, image=image, discriminator=ByBrightness())
    assert ByBrightness.calls == 1
    got = sorted((f["properties"]["centroid"][1], f["properties"]["ship_probability"]) for f in kept)
    assert got == [(pytest.approx(43.0), pytest.approx(0.15)), (pytest.approx(43.0), pytest.approx(0.2))]
