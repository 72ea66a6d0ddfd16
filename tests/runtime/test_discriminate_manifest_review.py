"""runtime.discriminate: a second stage in a manifest with out-of-range whole numbers is refused at load
with a ValueError (a BundleError there), and a huge ``ring_px`` measures a candidate, never fails its tile."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from runtime.candidate_features import component_features
from runtime.discriminate import TreeDiscriminator, discriminator_from_manifest

#: One split on the score, two leaves.
STUMP = {"kind": "trees", "features": ["score", "contrast"], "baseline": 0.0, "cut": 0.5,
         "trees": [{"feature": [0, 0, 0], "threshold": [0.5, 0.0, 0.0], "left": [1, -1, -1], "right": [2, -1, -1],
                    "value": [0.0, -1.0, 1.0]}]}


@pytest.mark.parametrize("where, key, value", [
    ("tree", "feature", 10**30), ("tree", "left", 2**64), ("tree", "value", 10**400),
    ("table", "baseline", 10**400)], ids=["feature", "left", "value", "baseline"])
def test_a_whole_number_too_large_for_its_array_is_refused_with_a_value_error(where: str, key: str, value: int) -> None:
    """JSON integers have no size limit; numpy and float() raised OverflowError, which escaped
    read_bundle's check as a traceback instead of a BundleError naming output.discriminator."""
    table: dict[str, Any] = copy.deepcopy(STUMP)
    target = table["trees"][0] if where == "tree" else table
    if isinstance(target[key], list):
        target[key][0] = value
    else:
        target[key] = value
    assert isinstance(discriminator_from_manifest(STUMP), TreeDiscriminator)
    with pytest.raises(ValueError, match="trees discriminator needs"):
        discriminator_from_manifest(table)


def test_a_logistic_bias_too_large_for_a_float_is_refused_with_a_value_error() -> None:
    table = {"features": ["score"], "mean": [0.0], "scale": [1.0], "weights": [1.0], "bias": 10**400, "cut": 0.5}
    with pytest.raises(ValueError, match="output.discriminator needs"):
        discriminator_from_manifest(table)


def test_a_ring_wider_than_the_tile_measures_as_the_whole_tile() -> None:
    """ring_px (2, 10**30) passes the manifest's check; the dilation allocated a box that wide and
    failed every tile holding a candidate. Past the tile's size a wider ring is the same ring."""
    image = np.random.default_rng(0).integers(0, 255, (3, 64, 64)).astype(np.uint8)
    ship = np.ones((3, 8), bool)
    tile_wide = component_features(image, ship, 30, 20, 0.9, 0.95, (2, 64))
    for outer in (10**5, 10**30):
        assert np.array_equal(component_features(image, ship, 30, 20, 0.9, 0.95, (2, outer)), tile_wide)
