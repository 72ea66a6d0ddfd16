"""runtime.discriminate: a second stage's single numbers (``cut``, ``bias``, ``baseline``) must be
numbers in the manifest, as its lists already must: ``float()`` took the string ``"0.5"`` or ``true``
(1.0) and the bundle loaded with a value nobody wrote as a number."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.discriminate import discriminator_from_manifest

LOGISTIC: dict[str, Any] = {"features": ["contrast"], "mean": [0.0], "scale": [1.0], "weights": [1.0],
                            "bias": 0.0, "cut": 0.5}
TREES: dict[str, Any] = {"kind": "trees", "features": ["score"], "baseline": 0.0, "cut": 0.5,
                         "trees": [{"feature": [0, 0, 0], "threshold": [0.5, 0.0, 0.0], "left": [1, -1, -1],
                                    "right": [2, -1, -1], "value": [0.0, -1.0, 1.0]}]}


@pytest.mark.parametrize("table, key, value", [
    (LOGISTIC, "cut", "0.5"), (LOGISTIC, "bias", True), (LOGISTIC, "bias", "1e3"),
    (TREES, "cut", "0.9"), (TREES, "baseline", False), (TREES, "baseline", "-2")],
    ids=["logistic-cut-string", "bias-bool", "bias-string", "trees-cut-string", "baseline-bool", "baseline-string"])
def test_a_scalar_that_is_not_a_number_is_refused_not_reinterpreted(table: dict[str, Any], key: str,
                                                                    value: object) -> None:
    discriminator_from_manifest(table)  # the table as written loads
    with pytest.raises(ValueError, match=f"{key} must be a number"):
        discriminator_from_manifest({**table, key: value})


def test_whole_numbers_and_floats_still_load() -> None:
    assert discriminator_from_manifest({**LOGISTIC, "bias": 2, "cut": 0.25}).bias == 2.0
    assert discriminator_from_manifest({**TREES, "baseline": -1}).baseline == -1.0
