"""hil's report: true vessels centred on no data or on masked land, counted apart from the misses.

Review (review 25): a true vessel on what the scene's file marks as no data, or on land that
``--land-masks`` masks, cannot be found (a detection centred there is dropped before scoring), yet it
counts as a miss in the object recall and F1. Those scores stay as published; the report now says
how many such vessels there were (``truth_on_nodata``, ``truth_on_land``), how many of them were
missed, and what share of the misses they are (``misses_on_nodata_or_land_share``).

A real GeoTIFF with three bright ships (one in the clear, one under a no-data stripe, one on land in
a real sea/land PNG), streamed through a real runtime serving the brightness model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import hil
from tests.conftest import make_brightness_bundle, write_scene_with_truth


def _scene(path: Path) -> tuple[Path, Path, Path]:
    """scene.tif (64 x 64, nodata 255), truth.tif and a folder with scene.png calling rows 46.. land."""
    pixels = np.full((3, 64, 64), 20, np.uint8)
    truth = np.zeros((64, 64), np.uint8)
    for r0, r1, c0, c1 in ((10, 18, 5, 45), (30, 38, 5, 45), (50, 56, 10, 40)):  # clear, no data, land
        pixels[:, r0:r1, c0:c1] = 250
        truth[r0:r1, c0:c1] = 1
    pixels[:, 28:40, 0:50] = 255  # the no-data stripe over the second ship
    scene, truth_tif = write_scene_with_truth(path, pixels, truth, "EPSG:32632",
                                              Affine(2.0, 0.0, 600000.0, 0.0, -2.0, 5000000.0))
    with rasterio.open(scene, "r+") as dst:
        dst.nodata = 255
    masks = path / "sealand"
    masks.mkdir()
    sea = np.full((1, 64, 64), 255, np.uint8)
    sea[:, 46:] = 0
    with rasterio.open(masks / "scene.png", "w", driver="PNG", height=64, width=64, count=1, dtype="uint8") as dst:
        dst.write(sea)
    return scene, truth_tif, masks


def test_truth_on_no_data_and_on_land_is_counted_apart(tmp_path: Path) -> None:
    bundle = tmp_path / "bright64"
    make_brightness_bundle(bundle, size=64)
    scene, truth, masks = _scene(tmp_path)
    r = hil.run(scene, bundle, tmp_path / "masked", truth=truth, device="CPU", land_masks=masks).report
    # the scores as they were: three true vessels, one found
    assert (r["n_truth"], r["true_positives"], r["false_negatives"]) == (3, 1, 2)
    assert r["recall"] == pytest.approx(1 / 3)
    assert (r["truth_on_nodata"], r["truth_on_nodata_missed"]) == (1, 1)
    assert (r["truth_on_land"], r["truth_on_land_missed"]) == (1, 1)
    assert r["misses_on_nodata_or_land_share"] == pytest.approx(1.0)
    (entry,) = r["per_scene"]
    assert (entry["truth_on_nodata"], entry["truth_on_land"], entry["truth_on_land_missed"]) == (1, 1, 1)


def test_without_land_masks_land_is_not_counted(tmp_path: Path) -> None:
    """Unmasked, the ship on land is found; the one on no data is still a miss, the only one."""
    bundle = tmp_path / "bright64"
    make_brightness_bundle(bundle, size=64)
    scene, truth, _ = _scene(tmp_path)
    r = hil.run(scene, bundle, tmp_path / "plain", truth=truth, device="CPU").report
    assert (r["true_positives"], r["false_negatives"]) == (2, 1)
    assert (r["truth_on_nodata"], r["truth_on_nodata_missed"]) == (1, 1)
    assert r["truth_on_land"] is None and r["truth_on_land_missed"] is None
    assert r["misses_on_nodata_or_land_share"] == pytest.approx(1.0)
