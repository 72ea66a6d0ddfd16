"""Reviewed defect of flightsim/sources/synthetic.py: ``limit`` was not checked (0 gave an empty
source, -1 a Python error on access); it is refused as every other source refuses it."""

from __future__ import annotations

import pytest

from flightsim.sources import SyntheticSource, open_source


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match=rf"limit must be a positive number of samples, got {limit}"):
        SyntheticSource([1, 2, 3], limit=limit)
    with pytest.raises(ValueError, match="limit must be a positive number"):
        open_source("synthetic:seeds=1-3", limit=limit)


def test_a_positive_limit_still_limits() -> None:
    assert len(SyntheticSource([1, 2, 3], limit=2, size=64)) == 2
