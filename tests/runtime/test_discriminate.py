"""runtime.discriminate: the second stage that keeps or drops each component, by its scores, size
and contrast against the clutter around it; on its own, inside vectorize, and in a served bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

import hil
from runtime.bundle import BundleError, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.candidate_features import CONTEXT_PX, FEATURES, component_features, shape_features
from runtime.discriminate import Discriminator, TreeDiscriminator, discriminator_from_manifest
from runtime.vectorize import vectorize
from tests.conftest import make_brightness_bundle, write_scene_with_truth

#: Keeps what has dark clutter around it: p = sigmoid(10 * (log1p(50) - log_ring)).
DARK_RING = Discriminator(("log_ring",), (0.0,), (1.0,), (-10.0,), 10.0 * float(np.log1p(50.0)), 0.5)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Dark sea (20), a bright ship at sea, and a bright roof inside grey land (100): the brightness
    model finds both; only the ship has dark clutter around it."""
    pixels = np.full((3, 64, 64), 20, dtype=np.uint8)
    truth = np.zeros((64, 64), dtype=np.uint8)
    pixels[:, 8:12, 6:22] = 250
    truth[8:12, 6:22] = 1
    pixels[:, 30:64, 30:64] = 100
    pixels[:, 44:50, 44:52] = 240
    return pixels, truth


def test_features_measure_the_component_against_the_ring_around_it() -> None:
    image = np.full((40, 40), 10.0)
    image[18:22, 15:25] = 200.0
    row = component_features(image, np.ones((4, 10), bool), 18, 15, 0.9, 0.99)
    values = dict(zip(FEATURES, row))
    assert values["log_area"] == pytest.approx(np.log(40))
    assert values["log_inside"] == pytest.approx(np.log1p(200.0))
    assert values["log_ring"] == pytest.approx(np.log1p(10.0))  # the gap keeps the ship out of its ring
    assert values["log_ring_std"] == pytest.approx(0.0)
    assert values["contrast"] == pytest.approx(190.0)
    # bands are averaged; a component at the tile's edge has a narrower ring, never an error
    assert np.allclose(component_features(np.stack([image] * 3), np.ones((4, 10), bool), 18, 15, 0.9, 0.99), row)
    edge = component_features(image, np.ones((2, 2), bool), 0, 0, 0.5, 0.5)
    assert np.isfinite(edge).all()


def test_the_wide_context_sees_land_that_the_ring_does_not() -> None:
    """The same ship on calm sea and 10 px from a bright, busy land edge: the 2-6 px ring is sea in
    both, the context (up to CONTEXT_PX beyond the box, outside the ring) is not."""
    rng = np.random.default_rng(0)
    sea = np.full((96, 96), 10.0)
    coast = sea.copy()
    coast[:, 66:] = rng.uniform(80, 200, (96, 30))
    ship = np.ones((4, 10), bool)
    at_sea, near_land = (dict(zip(FEATURES, component_features(img, ship, 46, 46, 0.9, 0.99))) for img in (sea, coast))
    for name in ("log_ring", "log_ring_std", "contrast"):
        assert at_sea[name] == pytest.approx(near_land[name])
    assert at_sea["log_context"] == pytest.approx(np.log1p(10.0)) and at_sea["log_context_std"] == pytest.approx(0.0)
    assert near_land["log_context"] > at_sea["log_context"] + 1.0
    assert near_land["log_context_std"] > 2.0 and near_land["log_context_p90"] > np.log1p(80.0)
    # land farther than CONTEXT_PX beyond the box is not seen
    far = sea.copy()
    far[:, 46 + 10 + CONTEXT_PX:] = 150.0
    assert component_features(far, ship, 46, 46, 0.9, 0.99)[FEATURES.index("log_context")] == pytest.approx(np.log1p(10.0))


def test_a_discriminator_is_checked_and_lists_the_valid_features() -> None:
    with pytest.raises(ValueError, match="among .*'contrast'"):
        Discriminator(("brightness",), (0.0,), (1.0,), (1.0,), 0.0, 0.5)
    with pytest.raises(ValueError, match="one per feature"):
        Discriminator(("contrast", "score"), (0.0,), (1.0,), (1.0,), 0.0, 0.5)
    with pytest.raises(ValueError, match="cut"):
        Discriminator(("contrast",), (0.0,), (1.0,), (1.0,), 0.0, 1.0)
    with pytest.raises(ValueError, match="scales"):
        Discriminator(("contrast",), (0.0,), (0.0,), (1.0,), 0.0, 0.5)
    with pytest.raises(ValueError, match="ring_px"):
        Discriminator.from_manifest({**DARK_RING.to_manifest(), "ring_px": [6]})
    with pytest.raises(ValueError, match="needs features"):
        Discriminator.from_manifest({"features": ["contrast"]})
    assert Discriminator.from_manifest(DARK_RING.to_manifest()) == DARK_RING


def test_shape_features_tell_a_filled_hull_from_a_ragged_blob_at_any_angle() -> None:
    hull = np.ones((4, 16), bool)
    fill, log_elong, extent = shape_features(hull)
    assert fill == pytest.approx(1.0, abs=0.01) and log_elong == pytest.approx(np.log(4.0), abs=0.01) and extent == 1.0
    # the same hull drawn on the diagonal: fill and elongation hold, the box is mostly empty
    diagonal = np.zeros((20, 20), bool)
    for i in range(16):
        diagonal[i + 2, i:i + 4] = True
    d_fill, d_elong, d_extent = shape_features(diagonal)
    assert d_fill > 0.8 and d_elong > 1.0 and d_extent < 0.2
    # a hollow, ragged outline of the same box fills much less of its spread
    ring = np.ones((16, 16), bool)
    ring[2:-2, 2:-2] = False
    assert shape_features(ring)[0] < 0.6 and shape_features(ring)[1] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(shape_features(np.ones((1, 1), bool))).all()  # one pixel: no zero moment


#: Two trees over (contrast, fill): -2 + 3 [contrast > 5] + 2 [fill > 0.7]: only a bright, filled
#: candidate gets past 0.5 (sigmoid(3) = 0.95), either alone stays below it (sigmoid(1), sigmoid(0)).
TWO_TREES = TreeDiscriminator(
    ("contrast", "fill"), -2.0,
    tuple({"feature": np.array([f, 0, 0]), "threshold": np.array([t, 0.0, 0.0]), "left": np.array([1, -1, -1]),
           "right": np.array([2, -1, -1]), "value": np.array([0.0, 0.0, v])} for f, t, v in ((0, 5.0, 3.0), (1, 0.7, 2.0))),
    0.9)


def test_a_trees_discriminator_walks_each_tree_and_travels_in_the_manifest() -> None:
    rows = np.zeros((4, len(FEATURES)))
    rows[:, FEATURES.index("contrast")] = [10.0, 10.0, 1.0, 5.0]
    rows[:, FEATURES.index("fill")] = [0.9, 0.5, 0.9, 0.9]
    p = TWO_TREES.probability(rows)
    assert p == pytest.approx(1 / (1 + np.exp(-np.array([3.0, 1.0, 0.0, 0.0]))))  # 5.0 <= 5.0 goes left
    # each row is judged alone: many rows at once give each its own answer
    assert np.array_equal(TWO_TREES.probability(np.repeat(rows, 5, axis=0)), np.repeat(p, 5))
    back = discriminator_from_manifest(json.loads(json.dumps(TWO_TREES.to_manifest())))
    assert isinstance(back, TreeDiscriminator) and np.array_equal(back.probability(rows), p)
    assert isinstance(discriminator_from_manifest(DARK_RING.to_manifest()), Discriminator)  # no kind: logistic
    table = TWO_TREES.to_manifest()
    with pytest.raises(ValueError, match="kind must be one of .*'trees'"):
        discriminator_from_manifest({**table, "kind": "forest"})
    with pytest.raises(ValueError, match="children"):  # a loop back to the root would never end
        discriminator_from_manifest({**table, "trees": [{**table["trees"][0], "right": [0, -1, -1]}]})
    with pytest.raises(ValueError, match="index the model's 2 features"):
        discriminator_from_manifest({**table, "trees": [{**table["trees"][0], "feature": [5, 0, 0]}]})
    with pytest.raises(ValueError, match="one value per node"):
        discriminator_from_manifest({**table, "trees": [{**table["trees"][0], "value": [0.0]}]})
    with pytest.raises(ValueError, match="needs features, baseline, trees"):
        discriminator_from_manifest({"kind": "trees", "features": ["contrast"]})


@pytest.mark.parametrize(("change", "says"), [
    ({"feature": [[0], [0], [0]]}, "feature must be a list of integers"),   # loaded, then a TypeError on every tile
    ({"threshold": "555"}, "threshold must be a list of numbers"),
    ({"left": [1.5, -1, -1]}, "left must be a list of integers"),
])
def test_a_malformed_trees_table_is_refused_when_read_not_on_board(change: dict, says: str) -> None:
    table = TWO_TREES.to_manifest()
    with pytest.raises(ValueError, match=says):
        discriminator_from_manifest({**table, "trees": [{**table["trees"][0], **change}, *table["trees"][1:]]})


@pytest.mark.parametrize(("change", "says"), [
    ({"mean": "5"}, "mean must be a list of numbers"),        # read as (5.0,) before
    ({"features": "contrast"}, "features must be a list of names"),
    ({"ring_px": "26"}, "ring_px must be two integers"),      # read as (2, 6) before
    ({"ring_px": [2.9, 6.9]}, "ring_px must be two integers"),  # cut to (2, 6) before
    ({"ring_px": [True, 6]}, "ring_px must be two integers"),
])
def test_a_malformed_logistic_table_is_refused_not_reinterpreted(change: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        discriminator_from_manifest({**DARK_RING.to_manifest(), **change})
    if "mean" not in change:  # the trees read features and ring_px the same way
        with pytest.raises(ValueError, match=says):
            discriminator_from_manifest({**TWO_TREES.to_manifest(), **change})


def test_vectorize_drops_what_the_discriminator_rejects_and_reports_what_it_keeps() -> None:
    pixels, _ = _scene()
    prob = 1.0 / (1.0 + np.exp(-(10.0 * pixels.mean(0) / 255.0 - 5.0)))
    plain = vectorize(prob, 0.5, Affine.identity(), None)
    kept = vectorize(prob, 0.5, Affine.identity(), None, image=pixels, discriminator=DARK_RING)
    assert len(plain) == 2 and len(kept) == 1
    assert kept[0]["properties"]["ship_probability"] > 0.99
    assert kept[0]["properties"]["centroid"][1] == pytest.approx(10.0)  # the ship, not the roof
    with pytest.raises(ValueError, match="needs the tile's image"):
        vectorize(prob, 0.5, Affine.identity(), None, discriminator=DARK_RING)


def test_a_served_bundle_applies_its_discriminator_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    plain = make_brightness_bundle(tmp_path / "plain", size=64)
    manifest = rewritable_manifest(plain)
    manifest["output"]["discriminator"] = DARK_RING.to_manifest()
    rewrite_bundle(plain, tmp_path / "two-stage", manifest)
    assert read_bundle(tmp_path / "two-stage").discriminator == DARK_RING
    pixels, truth = _scene()
    scene, truth_path = write_scene_with_truth(tmp_path, pixels, truth, "EPSG:32628",
                                               Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 2000000.0))
    before = hil.run(scene, tmp_path / "plain", tmp_path / "r1", truth=truth_path).report
    after = hil.run(scene, tmp_path / "two-stage", tmp_path / "r2", truth=truth_path).report
    assert (before["n_detections"], after["n_detections"]) == (2, 1)
    assert before["f1"] == pytest.approx(2 / 3) and after["f1"] == pytest.approx(1.0)
    kept = json.loads((tmp_path / "r2" / "detections.geojson").read_text())["features"]
    assert kept[0]["properties"]["ship_probability"] > 0.99
    manifest["output"]["discriminator"] = {**DARK_RING.to_manifest(), "features": ["brightness"]}
    with pytest.raises(BundleError, match="output.discriminator"):
        rewrite_bundle(plain, tmp_path / "bad", manifest)
    manifest["output"]["discriminator"] = {**TWO_TREES.to_manifest(), "kind": "forest"}
    with pytest.raises(BundleError, match="output.discriminator kind must be one of"):
        rewrite_bundle(plain, tmp_path / "bad", manifest)


def test_the_ring_dilation_is_the_square_neighbourhood() -> None:
    """``_dilate(mask, r)`` sets exactly the pixels within Chebyshev distance r of a set pixel, at
    the tile's edges too (the definition, written as (2r+1)^2 clipped shifts, on random masks)."""
    from runtime.candidate_features import _dilate

    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        mask = rng.random((h, w)) < rng.random() * 0.2
        r = int(rng.integers(0, 8))
        want = np.zeros_like(mask)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if abs(dy) >= h or abs(dx) >= w:  # shifted off the mask entirely
                    continue
                src = mask[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
                want[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)] |= src
        got = _dilate(mask, r)
        assert got.dtype == bool and np.array_equal(got, want), (h, w, r)


def test_the_p90_feature_is_numpys_percentile_bit_for_bit() -> None:
    """The features' 90th percentile is ``np.percentile(x, 90)`` exactly, so a second stage fitted
    with either judges every candidate the same (sizes 1 to 300, counts, means of bands, reals)."""
    from runtime.candidate_features import _p90

    rng = np.random.default_rng(0)
    for i in range(3000):
        n = int(rng.integers(1, 300))
        x = (rng.integers(0, 256, n).astype(np.float64), rng.integers(0, 766, n) / 3.0, rng.normal(0, 1e3, n))[i % 3]
        assert _p90(x) == float(np.percentile(x, 90)), n


def test_the_features_moments_are_numpys_bit_for_bit() -> None:
    """The ring's and context's mean and spread, and the shape's covariance, are numpy's ``mean``,
    ``std`` and ``cov(bias=True)`` exactly (written out for speed on board), so the shipped second
    stage, fitted with numpy's, judges every candidate the same."""
    from runtime.candidate_features import _mean_std, shape_features

    rng = np.random.default_rng(1)
    for i in range(3000):
        n = int(rng.integers(1, 5000))
        x = (rng.integers(0, 256, n).astype(np.float64), rng.integers(0, 766, n) / 3.0, rng.normal(0, 1e3, n))[i % 3]
        assert _mean_std(x) == (float(x.mean()), float(x.std())), n
    for _ in range(500):
        component = rng.random(tuple(int(v) for v in rng.integers(1, 40, 2))) < rng.random()
        rows, cols = np.nonzero(component)
        if rows.size < 2:
            continue
        cov = np.cov(np.stack([rows, cols]).astype(np.float64), bias=True)
        small, large = np.linalg.eigvalsh(cov + np.eye(2) / 12.0)
        want = (float(rows.size / (12.0 * np.sqrt(large * small))), float(0.5 * np.log(large / small)),
                float(rows.size / component.size))
        assert shape_features(component) == want
