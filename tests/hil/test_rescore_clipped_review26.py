"""scripts/rescore_objects.py scores finished runs as hil's object F1 does (review of 2026-12-05).

The script matched each run's detections against the raw truth outlines, where hil's rig scores
against their parts inside the image (:func:`hil.score.scored_truth`): a ship whose outline ran past
the image edge, found by its visible part, was a hit in the run's report and a miss (with a false
alarm) when rescored, so the "now" figures of a run differed from the rig's on the same truth.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box, mapping

from flightsim.sources.base import Sample
from hil.score import match_objects, scored_truth
from hil.settings import DEFAULTS

REPO = Path(__file__).resolve().parents[2]
GSD = 2.0
TRANSFORM = Affine(GSD, 0.0, 600000.0, 0.0, -GSD, 5000000.0)
SIZE = 64


def _script() -> ModuleType:
    """scripts/rescore_objects.py as a fresh module, so that the test can patch what it opens."""
    spec = importlib.util.spec_from_file_location("script_rescore_objects_review26",
                                                  REPO / "scripts" / "rescore_objects.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _map_box(r0: float, c0: float, r1: float, c1: float) -> Any:
    """The map polygon of the pixel box rows r0..r1, columns c0..c1 (any of them past the image)."""
    x0, y0 = TRANSFORM * (c0, r0)
    x1, y1 = TRANSFORM * (c1, r1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _sample() -> Sample:
    """A 64 x 64 px scene with two ships: one inside, one whose outline runs 20 px past the right edge."""
    return Sample(name="scene", height=SIZE, width=SIZE, transform=TRANSFORM, crs=CRS.from_epsg(32632),
                  bands=["r", "g", "b"], dtype="uint8", image=np.zeros((3, SIZE, SIZE), np.uint8),
                  mask=np.zeros((SIZE, SIZE), np.uint8),
                  vessels=[_map_box(10, 10, 20, 16), _map_box(30, 54, 36, SIZE + 20)])


def test_an_outline_past_the_edge_found_by_its_visible_part_is_a_hit_as_in_hil(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sample = _sample()
    # the detections the payload could give: each ship's visible part (the second one's IoU with its raw
    # outline is 10 / 30, under 0.5; with the part inside the image, 1)
    found = [_map_box(10, 10, 20, 16), _map_box(30, 54, 36, SIZE)]
    hil = match_objects(found, scored_truth(sample), DEFAULTS.score.match_iou)
    assert hil["true_positives"] == 2 and hil["n_truth"] == 2  # what the rig's report says of this scene
    entry = {"name": "set/scene", "n_detections": 2, "n_truth": 2, "recall": hil["recall"],
             "true_positives": hil["true_positives"]}
    (tmp_path / "report.json").write_text(json.dumps({"per_scene": [entry]}))
    (tmp_path / "detections.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32632"}},
        "features": [{"type": "Feature", "geometry": mapping(g), "properties": {"scene": "set/scene"}}
                     for g in found]}))
    script = _script()
    monkeypatch.setattr(script, "open_source", lambda spec: [_sample()])

    out = script.rescore(tmp_path, {"set": "whatever:spec"})
    assert (out["now_tp"], out["now_detections"], out["now_truth"]) == (2, 2, 2)
    assert out["now_f1"] == pytest.approx(hil["f1"]) == 1.0
    assert out["now_f1"] == out["before_f1"]  # the same detections and truth: the run's own figure again

    # and through the command line, unchanged
    assert script.main([str(tmp_path), "--set", "set=whatever:spec"]) == 0
    printed = json.loads(capsys.readouterr().out.split(" ", 1)[1])
    assert printed["now_tp"] == 2 and printed["now_f1"] == 1.0


def test_an_outline_wholly_outside_the_image_is_not_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = _sample()
    sample.vessels = [*sample.vessels, _map_box(0, SIZE + 5, 8, SIZE + 15)]  # beyond the right edge
    assert len(scored_truth(sample)) == 2
    found = [_map_box(10, 10, 20, 16)]
    (tmp_path / "report.json").write_text(json.dumps({"per_scene": [
        {"name": "set/scene", "n_detections": 1, "n_truth": 2, "recall": 0.5}]}))
    (tmp_path / "detections.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32632"}},
        "features": [{"type": "Feature", "geometry": mapping(g), "properties": {"scene": "set/scene"}}
                     for g in found]}))
    script = _script()
    monkeypatch.setattr(script, "open_source", lambda spec: [sample])
    out = script.rescore(tmp_path, {"set": "whatever:spec"})
    assert (out["now_tp"], out["now_detections"], out["now_truth"]) == (1, 1, 2)
