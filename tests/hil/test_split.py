"""`hil run --split OUT/data/split.json:ROLE` scores a model on exactly the samples a search set aside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from hil.__main__ import main, split_source
from tests.conftest import make_brightness_bundle


def _mask_folder(root: Path, n: int, size: int = 64) -> None:
    """``n`` images with one bright ship each, in the hrsid-mini layout (images/ and masks/)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[10 + 3 * i:16 + 3 * i, 8:40] = 1
        img = (30 + 200 * mask).astype(np.uint8)
        for path, pixels, driver in ((root / "images" / f"p{i}.jpg", np.stack([img] * 3), "JPEG"),
                                     (root / "masks" / f"p{i}.png", np.stack([0 * mask, 255 * mask, 0 * mask]), "PNG")):
            with rasterio.open(path, "w", driver=driver, height=size, width=size, count=3, dtype="uint8") as dst:
                dst.write(pixels)


@pytest.fixture()
def split_file(tmp_path: Path) -> Path:
    _mask_folder(tmp_path / "set", 5)
    spec = f"hrsid-mini:{tmp_path / 'set'}"
    from flightsim.sources import open_source

    source = open_source(spec)
    split = {"source": spec, "split_seed": 0, "train": [0, 1, 2], "val": [3], "test": [4],
             "names": {str(i): source[i].name for i in range(len(source))}}
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split))
    return path


def test_the_test_role_is_exactly_the_held_out_samples(split_file: Path) -> None:
    subset = split_source(f"{split_file}:test")
    assert len(subset) == 1 and subset.describe()["test"] == [4]
    assert [s.name for s in subset] == [json.loads(split_file.read_text())["names"]["4"]]


def test_bad_split_arguments_are_clear_errors(split_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train"):
        split_source(f"{split_file}:holdout")
    with pytest.raises(ValueError, match="no such file"):
        split_source(f"{tmp_path / 'none.json'}:test")
    changed = json.loads(split_file.read_text())
    changed["names"]["4"] = "another"
    split_file.write_text(json.dumps(changed))
    with pytest.raises(ValueError, match="changed"):
        split_source(f"{split_file}:test")


def test_cli_scores_the_split(split_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    assert main(["run", "--split", f"{split_file}:val", "--model", str(bundle), "--device", "CPU",
                 "--report", str(tmp_path / "out"), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["scene"]["val"] == [3] and report["tiles_lost"] == 0 and report["f1"] == 1.0
    assert main(["run", "--model", str(bundle), "--report", str(tmp_path / "o2")]) == 2
    assert "exactly one of --scene and --split" in capsys.readouterr().err


def test_land_masks_drop_detections_on_land_before_scoring(split_file: Path, tmp_path: Path) -> None:
    """Sample p3 (the val sample) has its ship at rows 19-25: a mask calling those rows land removes it."""
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    masks = tmp_path / "sealand"
    masks.mkdir()
    sea = np.full((64, 64), 255, np.uint8)
    sea[15:30] = 0
    with rasterio.open(masks / "p3.png", "w", driver="PNG", height=64, width=64, count=1, dtype="uint8") as dst:
        dst.write(sea[None])
    args = ["run", "--split", f"{split_file}:val", "--model", str(bundle), "--device", "CPU", "--quiet"]
    assert main([*args, "--report", str(tmp_path / "plain")]) == 0
    assert main([*args, "--report", str(tmp_path / "masked"), "--land-masks", str(masks)]) == 0
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    masked = json.loads((tmp_path / "masked" / "report.json").read_text())
    assert plain["land_masked"] is None and plain["f1"] == 1.0
    assert masked["land_masked"]["samples_with_a_mask"] == 1
    assert masked["land_masked"]["detections_dropped"] == 1 and masked["recall"] == 0.0 and masked["vessel_iou"] == 0.0
    assert main([*args, "--report", str(tmp_path / "typo"), "--land-masks", str(tmp_path / "no-such")]) == 2
