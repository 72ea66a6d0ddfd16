"""A golden tile must hold vessels: on a tile with none, a model that never finds a ship gives the
expected empty mask (IoU 1.0) and near-zero probabilities, so the acceptance test would pass it. Such
a tile is refused when a flight bundle's golden tile is written (the search's candidates may have
one: a barely trained network finds nothing); the shipped bundles' golden tiles hold vessels and
still pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.bundle import GOLDEN_FILE, read_bundle
from runtime.device import open_device
from runtime.golden import check_golden, with_golden
from runtime.preprocess import Preprocessor
from tests.conftest import make_brightness_bundle

REPO = Path(__file__).resolve().parents[2]


def _ship_tile() -> np.ndarray:
    tile = np.zeros((3, 64, 64), np.uint8)
    tile[:, 10:20, 5:45] = 255
    return tile


def test_with_golden_refuses_a_tile_without_vessels(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "b")
    before = (tmp_path / "b" / "manifest.json").read_bytes()
    with pytest.raises(ValueError, match="a golden tile must hold vessels"):
        with_golden(tmp_path / "b", np.zeros((3, 64, 64), np.uint8))  # dark sea: no "vessel" pixel
    assert (tmp_path / "b" / "manifest.json").read_bytes() == before  # the bundle was not rewritten


@pytest.mark.parametrize("name", ["default", "sar", "optical"])
def test_the_shipped_bundles_golden_tiles_hold_vessels_and_reproduce_on_the_cpu(name: str) -> None:
    bundle = read_bundle(REPO / "models" / name)
    if GOLDEN_FILE not in bundle.files:
        pytest.skip(f"models/{name} has no golden tile")
    assert bundle.manifest["golden"]["vessel_pixels"] > 0
    adapter = open_device(bundle, "CPU", lambda *_: None, infer_requests=1)
    try:
        agreement = check_golden(bundle, adapter, Preprocessor(bundle.manifest["input"], adapter.input_shape))
    finally:
        adapter.close()
    assert agreement is not None


def test_a_search_candidate_may_have_a_golden_tile_without_vessels(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "b")
    bundle = with_golden(tmp_path / "b", np.zeros((3, 64, 64), np.uint8), require_vessels=False)
    assert bundle.manifest["golden"]["vessel_pixels"] == 0
