"""The band rule lives once, in runtime.bands: the rig (through flightsim.sources) and
``runtime infer`` use the same function (reviewer's defect 4)."""

from __future__ import annotations

import pytest

import flightsim.sources
from runtime.bands import adapt_bands


def test_the_rig_and_infer_share_one_rule() -> None:
    assert flightsim.sources.adapt_bands is adapt_bands


def test_a_caller_without_a_bands_option_is_told_which_rules_were_tried() -> None:
    with pytest.raises(ValueError, match=r"the model takes 3 .*; no rule applies \(the same count") as err:
        adapt_bands(["a", "b"], ["red", "green", "blue"], option=None)
    assert "--bands" not in str(err.value)
    with pytest.raises(ValueError, match="give --bands with 3"):  # the rig's wording is unchanged
        adapt_bands(["a", "b"], ["red", "green", "blue"])
