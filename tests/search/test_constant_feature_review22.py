"""A feature that never varies on the training candidates is left unscaled by the logistic fit."""

from __future__ import annotations

import numpy as np

from runtime.candidate_features import FEATURES
from search.discriminate import fit_logistic


def test_a_constant_feature_gets_scale_one_not_its_rounding_error() -> None:
    """A column of 0.7 (100 rows) has a float64 std of 2.2e-16, not 0: the fit kept it as the scale, so a
    candidate in flight whose value was 0.8 stood 5e14 standard deviations out and that one feature
    decided it whatever its weight's size."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(100, len(FEATURES)))
    labels = (rows[:, 0] > 0).astype(float)
    constant = FEATURES.index("log_ring")
    rows[:, constant] = 0.7
    assert rows.std(0)[constant] != 0  # the rounding the fit must not take for a spread
    stage = fit_logistic(rows, labels)
    assert stage.scale[constant] == 1.0
    moved = rows[:5].copy()
    moved[:, constant] = 0.8
    assert np.allclose(stage.probability(moved), stage.probability(rows[:5]), atol=0.05)
