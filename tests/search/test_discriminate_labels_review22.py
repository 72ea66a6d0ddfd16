"""search.discriminate labels each training and validation candidate, and counts the true vessels, as
hil's object F1 counts them (``hil.rig``: truth clipped to the image by ``hil.score.within``, matched by
``hil.score.match_objects`` with its slack): the cut is chosen by that F1, so a candidate hil counts as a
hit must be a ship in the fit's rows, and a truth hil leaves out must not count as a miss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS

import hil.__main__
import search.discriminate as sd
from flightsim.sources.base import Sample
from hil.merge import owned_box
from hil.score import match_objects, within

SIZE = 64


def _sample(name: str, transform: Affine, vessels: list[Any], crs: CRS | None = None) -> Sample:
    rng = np.random.default_rng(0)
    return Sample(name=name, height=SIZE, width=SIZE, transform=transform, crs=crs, bands=["VV"], dtype="uint8",
                  image=rng.integers(0, 60, (1, SIZE, SIZE), dtype=np.uint8), vessels=vessels)


def _candidates(tmp_path: Path, monkeypatch: Any, sample: Sample, found: list[Any]
                ) -> sd.Candidates:
    """search.discriminate.candidates on one real in-memory sample and its detections (hil's file)."""
    features = [{"type": "Feature", "geometry": g.__geo_interface__,
                 "properties": {"scene": sample.name, "score": 0.9, "max_score": 0.95, "pieces": 1}} for g in found]
    (tmp_path / "detections.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    monkeypatch.setattr(hil.__main__, "split_source", lambda spec: iter([sample]))
    return sd.candidates(tmp_path / "split.json", "val", tmp_path / "detections.geojson", SIZE)


def _hil(sample: Sample, found: list[Any]) -> dict[str, Any]:
    """hil's object scores of ``found`` on ``sample``, as ``hil.rig`` computes them."""
    truth = within(sample.vessels or [], owned_box(sample.transform, (0, 0, SIZE, SIZE)))
    return match_objects(found, truth, 0.5)


def test_a_ship_whose_outline_runs_past_the_image_is_labelled_and_counted_as_hil_scores_it(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A truth box running 20 px past the right edge, found by its visible 10 px: hil's hit, a false
    alarm in the rows (IoU 1/3 with the raw box); a truth wholly outside the image was counted a miss."""
    past_edge, outside = shapely.box(54, 10, 84, 20), shapely.box(100, 100, 110, 110)
    sample = _sample("edge", Affine.identity(), [past_edge, outside])
    found = [shapely.box(54, 10, 64, 20)]
    hil_scores = _hil(sample, found)
    assert (hil_scores["true_positives"], hil_scores["n_truth"]) == (1, 1)
    _, labels, n_truth, _, _ = _candidates(tmp_path, monkeypatch, sample, found)
    assert labels.tolist() == [True]
    assert n_truth == 1


def test_an_iou_of_exactly_one_half_on_a_degree_grid_is_a_match_as_in_hil(tmp_path: Path, monkeypatch: Any) -> None:
    """2 of 4 pixels at 1e-5 degrees near longitude 150: the map coordinates' rounding makes the IoU
    0.4999999996, which hil counts (IOU_SLACK) and the rows labelled a false alarm."""
    transform = Affine(1e-5, 0, 150.0 + 2 * 1.37e-4, 0, -1e-5, -30.0 - 2 * 2.1e-4)
    truth, det = owned_box(transform, (22, 12, 1, 4)), owned_box(transform, (22, 12, 1, 2))
    assert det.intersection(truth).area / det.union(truth).area < 0.5  # the rounding this is about
    sample = _sample("degrees", transform, [truth], CRS.from_epsg(4326))
    assert _hil(sample, [det])["true_positives"] == 1
    labels = _candidates(tmp_path, monkeypatch, sample, [det]).labels
    assert labels.tolist() == [True]


def test_a_bow_tie_truth_outline_is_matched_by_its_valid_form_not_a_crash(tmp_path: Path, monkeypatch: Any) -> None:
    """GEOS refuses to intersect a self-crossing outline (TopologyException); hil matches its valid areal
    form (hil.score.areal), and the fit stopped on it."""
    bow_tie = shapely.Polygon([(10, 10), (30, 30), (30, 10), (10, 30)])
    sample = _sample("bowtie", Affine.identity(), [bow_tie])
    found = [shapely.box(10, 10, 20, 30)]
    expected = _hil(sample, found)["true_positives"] == 1
    _, labels, n_truth, _, _ = _candidates(tmp_path, monkeypatch, sample, found)
    assert labels.tolist() == [expected]
    assert n_truth == 1
