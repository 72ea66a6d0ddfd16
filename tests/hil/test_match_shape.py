"""``[score] match_shape`` (``hil run --match-shape``): truth annotated with axis-aligned boxes only
(as many public ship sets are) is matched box to box on request, and a run that matches outlines
against such truth says so (:mod:`hil.score`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from shapely.affinity import rotate
from shapely.geometry import box, mapping, shape

import hil
from hil.__main__ import main as hil_main
from hil.score import as_matched, boxes_only
from hil.settings import DEFAULTS
from runtime.server import Runtime
from tests.hil.test_border import _ship_scene

def _diagonal_ship(tmp: Path) -> tuple[Path, Path]:
    """test_border's scene with one bright hull of 50 x 12 px turned 45 degrees inside one 64 px tile,
    and a GeoJSON truth holding only the hull's axis-aligned box (the hull fills about a third of it)."""
    scene, truth, _ = _ship_scene(tmp, (96.0, 96.0), 50.0, 45.0)
    (hull,) = (shape(f["geometry"]) for f in json.loads(truth.read_text())["features"])
    boxes = tmp / "boxes.geojson"
    boxes.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": mapping(box(*hull.bounds)), "properties": {}}]}))
    return scene, boxes


def test_boxes_are_told_from_outlines() -> None:
    hull = rotate(box(0, 0, 50, 8), 45)
    assert boxes_only([box(0, 0, 4, 2), box(10, 10, 12, 30)]) and not boxes_only([box(0, 0, 4, 2), hull])
    assert not boxes_only([])
    (boxed,) = as_matched([hull], "box")
    assert boxed.equals(box(*hull.bounds)) and as_matched([hull], "outline") == [hull]
    with pytest.raises(ValueError, match=r"match_shape 'obb'; valid: \['outline', 'box'\]"):
        as_matched([hull], "obb")


def test_a_diagonal_ship_with_a_box_truth_is_found_when_boxes_are_matched(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    scene, truth = _diagonal_ship(tmp_path)
    control = running_runtime.endpoints["control"]
    as_outlines = hil.run(scene, brightness_bundle, tmp_path / "outline", truth=truth, runtime=control).report
    boxed = dataclasses.replace(DEFAULTS, score=dataclasses.replace(DEFAULTS.score, match_shape="box"))
    as_boxes = hil.run(scene, brightness_bundle, tmp_path / "box", truth=truth, runtime=control, config=boxed).report
    # found either way (one detection, the ship); only its outline against the box misses
    assert as_outlines["n_detections"] == as_boxes["n_detections"] == 1
    assert (as_outlines["f1"], as_boxes["f1"]) == (0.0, 1.0)
    assert (as_outlines["match_shape"], as_boxes["match_shape"]) == ("outline", "box")
    assert as_outlines["truth_boxes_only_samples"] == as_boxes["truth_boxes_only_samples"] == 1
    # the pixel scores do not depend on how objects are matched
    assert as_outlines["outline_vessel_iou"] == as_boxes["outline_vessel_iou"]


def test_the_summary_warns_of_outlines_matched_against_boxes(tmp_path: Path, running_runtime: Runtime,
                                                            brightness_bundle: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    scene, truth = _diagonal_ship(tmp_path)
    args = [str(scene), "--model", str(brightness_bundle), "--truth", str(truth), "--quiet",
            "--runtime", running_runtime.endpoints["control"]]
    assert hil_main(["run", "--scene", *args, "--report", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "the truth of 1 of 1 image(s) is axis-aligned boxes only" in out and "F1 0.000" in out
    assert hil_main(["run", "--scene", *args, "--report", str(tmp_path / "b"), "--match-shape", "box"]) == 0
    out = capsys.readouterr().out
    assert "axis-aligned boxes only" not in out and "F1 1.000" in out


def test_an_unknown_match_shape_in_a_config_lists_the_valid_ones(tmp_path: Path) -> None:
    from hil.settings import Settings

    config = tmp_path / "hil.toml"
    config.write_text('[score]\nmatch_shape = "rotated"\n')
    with pytest.raises(ValueError, match=r"\[score\] match_shape 'rotated'; valid: \['outline', 'box'\]"):
        Settings.load(config)
