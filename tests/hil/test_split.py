"""`hil run --split OUT/data/split.json:ROLE` scores a model on exactly the samples a search set aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def test_a_split_of_several_sets_names_its_source_as_a_list(split_file: Path) -> None:
    """What ``python -m search run`` writes for a ``[data] source`` list (configs/sar.toml)."""
    split = json.loads(split_file.read_text())
    split["source"] = [split["source"]]
    split["names"] = {k: f"hrsid-mini/{v.split('/')[-1]}" for k, v in split["names"].items()}
    split_file.write_text(json.dumps(split))
    subset = split_source(f"{split_file}:test")
    assert len(subset) == 1 and [s.name for s in subset] == [split["names"]["4"]]


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


def _no_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting a runtime fail the test: the checks under test must come before it."""
    import hil.rig

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a runtime was started before the input was checked")

    monkeypatch.setattr(hil.rig, "RuntimeProcess", refuse)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.pop("source"), "no 'source'"),
    (lambda s: s.pop("val"), r"no 'val' samples in the split file; roles present: \['train', 'test'\]"),
    (lambda s: s.update(val=["3"]), "'val' must be a list of integer sample indices"),
    (lambda s: s.update(val=3), "'val' must be a list of integer sample indices"),
    (lambda s: s.update(val=[7]), r"val sample indices \[7\] are outside 0..4"),
    (lambda s: s.update(val=[-1]), r"val sample indices \[-1\] are outside 0..4"),
    (lambda s: s.update(names=["p0"]), "'names' must be an object"),
])
def test_a_split_file_of_the_wrong_shape_is_a_clear_error(split_file: Path, edit: Any, message: str) -> None:
    """Not a KeyError, TypeError or IndexError traceback: a ValueError naming the file and the fault
    (an index outside the set is caught before the names are compared, where it raised IndexError)."""
    split = json.loads(split_file.read_text())
    split["names"]["7"] = "p7"  # a name for the index out of range, which took it to source[7]
    edit(split)
    split_file.write_text(json.dumps(split))
    with pytest.raises(ValueError, match=message) as err:
        split_source(f"{split_file}:val")
    assert str(split_file) in str(err.value)


def test_the_cli_reports_a_bad_split_file_as_an_error_line(split_file: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    split_file.write_text(json.dumps({"source": json.loads(split_file.read_text())["source"], "train": [0]}))
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    assert main(["run", "--split", f"{split_file}:test", "--model", str(bundle), "--report", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert f"error: --split {split_file}: no 'test' samples in the split file; roles present: ['train']" \
        in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--limit", "1"], ["--truth", "t.geojson"], ["--gsd", "2"],
                                    ["--origin", "0,0"], ["--crs", "EPSG:32632"]])
def test_options_a_split_would_ignore_are_refused_with_it(split_file: Path, tmp_path: Path, option: list[str],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The split file names the data set, its truth and samples: --limit, --truth and a georeference
    given with --split were silently ignored (a run of every sample, scored on the set's truth)."""
    _no_runtime(monkeypatch)
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    assert main(["run", "--split", f"{split_file}:val", "--model", str(bundle), "--report", str(tmp_path / "o"),
                 "--quiet", *option]) == 2
    assert f"error: {option[0]} cannot be given with --split" in capsys.readouterr().err
    # hil.run refuses them with an opened source as well
    import hil

    with pytest.raises(ValueError, match="limit cannot be given with an opened source"):
        hil.run(split_source(f"{split_file}:val"), bundle, tmp_path / "o2", limit=1)


def test_a_source_with_no_samples_is_refused_before_the_run(split_file: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """It reported units "mixed", tiles_sent 0 and exit 0, as though a set had been scored."""
    import hil
    from flightsim.sources import Subset, open_source

    _no_runtime(monkeypatch)
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    source = open_source(json.loads(split_file.read_text())["source"])
    with pytest.raises(ValueError, match="the scene source has no samples"):
        hil.run(Subset(source, [], role="val"), bundle, tmp_path / "o")
    split = json.loads(split_file.read_text())
    split["val"] = []
    split_file.write_text(json.dumps(split))
    with pytest.raises(ValueError, match=f"--split {split_file}: the 'val' role has no samples"):
        split_source(f"{split_file}:val")


@pytest.mark.parametrize("fault", ["shape", "unreadable"])
def test_a_bad_land_mask_is_refused_before_the_run(split_file: Path, tmp_path: Path, fault: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A mask of the wrong size, or a file rasterio cannot read, was found only at scoring, after
    the whole run (the unreadable one as a raw RasterioIOError): each is a ValueError naming the
    file, raised before a runtime starts."""
    import hil

    _no_runtime(monkeypatch)
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    masks = tmp_path / "sealand"
    masks.mkdir()
    if fault == "shape":
        with rasterio.open(masks / "p3.png", "w", driver="PNG", height=32, width=64, count=1, dtype="uint8") as dst:
            dst.write(np.full((1, 32, 64), 255, np.uint8))
        message = r"p3\.png: sea/land mask is \(32, 64\), the image is \(64, 64\)"
    else:
        (masks / "p3.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
        message = r"p3\.png: not a readable sea/land mask"
    with pytest.raises(ValueError, match=message):
        hil.run(split_source(f"{split_file}:val"), bundle, tmp_path / "o", land_masks=masks)


def test_a_mask_folder_with_no_mask_for_any_sample_is_refused_before_the_run(
        split_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wrong folder (SSDD's, above its sealand/) scored the run unmasked with exit status 0; it is
    refused before a runtime starts, with the file name it looked for."""
    import hil

    _no_runtime(monkeypatch)
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ValueError, match=r"none of the 1 samples has a mask there \(<sample>\.png, e\.g\. p3\.png\)"):
        hil.run(split_source(f"{split_file}:val"), bundle, tmp_path / "o", land_masks=tmp_path / "elsewhere")


@pytest.mark.parametrize("georeferenced", [True, False])
def test_a_coastline_without_its_package_is_refused_before_a_runtime_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, georeferenced: bool) -> None:
    """--land-masks gshhg without roaring-landmask (an optional extra): refused before streaming
    when a sample has a CRS to look up (it used to fail at scoring, after the whole run), and not
    needed for a set with none (nothing to look up; the run goes on)."""
    import sys

    import hil
    from affine import Affine

    from tests.conftest import write_scene_with_truth

    monkeypatch.setitem(sys.modules, "roaring_landmask", None)  # as if the extra were not installed
    bundle = tmp_path / "bright"
    make_brightness_bundle(bundle, size=64)
    pixels = np.full((3, 64, 64), 20, np.uint8)
    pixels[:, 10:14, 15:35] = 250
    truth = (pixels[0] == 250).astype(np.uint8)
    crs, transform = ("EPSG:32628", Affine(250.0, 0, 373000.0, 0, -250.0, 1993000.0)) if georeferenced else \
        (None, Affine.identity())
    (tmp_path / "s").mkdir()
    scene, truth_path = write_scene_with_truth(tmp_path / "s", pixels, truth, crs, transform)  # type: ignore[arg-type]
    if georeferenced:
        _no_runtime(monkeypatch)
        with pytest.raises(ValueError, match=r"--land-masks gshhg needs roaring-landmask: pip install"):
            hil.run(scene, bundle, tmp_path / "o", truth=truth_path, land_masks="gshhg")
    else:
        report = hil.run(scene, bundle, tmp_path / "o", truth=truth_path, land_masks="gshhg").report
        assert report["f1"] == pytest.approx(1.0) and report["land_masked"]["samples_with_a_mask"] == 0
