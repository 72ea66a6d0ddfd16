"""The second stage gives a defined probability for any tile and any finite model: never NaN."""

from __future__ import annotations

import warnings

import numpy as np

from runtime.candidate_features import FEATURES, component_features
from runtime.discriminate import Discriminator


def _component() -> np.ndarray:
    component = np.zeros((8, 8), bool)
    component[2:6, 1:7] = True
    return component


def test_features_of_a_tile_below_zero_are_finite_and_counts_keep_their_values() -> None:
    """A float tile in decibels (every value below -1) made NaN log features, on which a logistic
    stage gave NaN and a tree stage sent every test to one side; counts keep log1p's values exactly."""
    rng = np.random.default_rng(0)
    decibels = rng.uniform(-30.0, -5.0, (64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log1p of a value below -1 warns
        row = component_features(decibels, _component(), 20, 20, 0.9, 0.95)
    assert np.isfinite(row).all()
    counts = rng.uniform(0.0, 255.0, (64, 64))
    row = component_features(counts, _component(), 20, 20, 0.9, 0.95)
    inside = counts[20:28, 20:28][_component()]
    assert row[FEATURES.index("log_inside")] == np.log1p(inside.sum() / inside.size)


def test_terms_that_overflow_to_undefined_give_probability_zero_not_nan() -> None:
    """A feature so far out that its standardised value overflows, under a weight of 0, is 0 * inf:
    NaN, which the runtime kept (NaN < cut is false) and wrote into the GeoJSON as NaN."""
    n = len(FEATURES)
    weights = (0.0,) + (1.0,) * (n - 1)
    stage = Discriminator(FEATURES, (0.0,) * n, (1e-3,) * n, weights, 0.0, 0.5)
    row = np.ones((1, n))
    row[0, 0] = 1e306
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stage.probability(row).tolist() == [0.0]
    row[0, 0] = 1.0  # the rest of the row as it is: certain
    assert stage.probability(row).tolist() == [1.0]
