"""search.discriminate's ``cut_by``: the second stage's cut chosen on validation by object F1 alone, or by
F1 plus the pooled vessel IoU of the outlines it keeps, the two figures a flight model is held to. The
outlines' IoU is computed from each candidate's pixels as hil computes ``outline_vessel_iou``, a
search configured one way does not reuse a fit or a verdict made the other way, and a name outside
the valid ones is refused with them listed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.features import rasterize

import hil.__main__
import search.discriminate as sd
from flightsim.sources.base import Sample
from hil.score import ious, pixel_counts
from search.config import CUT_BY, check_cut_by, load_config

SIZE = 64


def test_f1_alone_cuts_past_a_large_ship_that_f1_plus_outline_iou_keeps() -> None:
    """At 0.7 a large ship matched at IoU 0.45 (a false alarm to F1) is dropped: F1 rises a little and
    the outlines lose its pixels; the sum keeps it. Equal scores go to the cut nearest 0.5."""
    f1 = {0.5: 0.70, 0.6: 0.70, 0.7: 0.71}
    iou = {0.5: 0.49, 0.6: 0.49, 0.7: 0.45}
    assert sd.choose_cut(f1, iou, "f1") == 0.7
    assert sd.choose_cut(f1, iou, "f1+outline_iou") == 0.5
    with pytest.raises(ValueError, match=r"must be one of \('f1', 'f1\+outline_iou'\); got 'iou'"):
        sd.choose_cut(f1, iou, "iou")


def test_the_outlines_iou_of_the_candidates_is_hils() -> None:
    """:func:`search.discriminate.pooled_outline_iou` of any kept subset, from
    :attr:`Candidates.pixels`, equals hil's pooled IoU of those outlines burnt on the truth mask."""
    truth = np.zeros((SIZE, SIZE), bool)
    truth[10:20, 5:45] = True  # a large ship
    truth[40:44, 40:48] = True  # a small one
    outlines = [shapely.box(5, 8, 30, 22),  # part of the large ship, past its sides
                shapely.box(40, 40, 48, 44),  # the small ship, exactly
                shapely.box(50, 50, 60, 60)]  # a false alarm
    burnt = [rasterize([(o, 1)], out_shape=truth.shape, transform=Affine.identity()).astype(bool) for o in outlines]
    pixels = np.array([(np.count_nonzero(b & truth), np.count_nonzero(b)) for b in burnt])
    for kept in ([True, True, True], [True, False, False], [False, True, True], [False, False, False]):
        union = np.zeros(truth.shape, bool)
        for b, k in zip(burnt, kept):
            union |= b & k
        expected = ious(pixel_counts(union, truth))["vessel_iou"]
        assert sd.pooled_outline_iou(np.array(kept), pixels, int(truth.sum())) == pytest.approx(expected)


def test_candidates_count_each_detections_pixels_against_the_samples_truth_mask(tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    """A real in-memory sample and a hil detections file: each row's pixels are its outline's pixels
    (hil's rasterisation) and those of them inside the truth mask; the part's truth pixels are the
    mask's."""
    ship = shapely.box(10, 10, 40, 20)
    mask = rasterize([(ship, 1)], out_shape=(SIZE, SIZE), transform=Affine.identity())
    rng = np.random.default_rng(0)
    sample = Sample(name="s/one", height=SIZE, width=SIZE, transform=Affine.identity(), crs=None, bands=["VV"],
                    dtype="uint8", image=rng.integers(0, 60, (1, SIZE, SIZE), dtype=np.uint8), vessels=[ship],
                    mask=mask)
    # a second sample without a truth mask: hil pools none of its pixels, and neither do the candidates
    bare = Sample(name="s/bare", height=SIZE, width=SIZE, transform=Affine.identity(), crs=None, bands=["VV"],
                  dtype="uint8", image=sample.image, vessels=None, mask=None)
    found = [(sample, shapely.box(10, 10, 24, 20)), (sample, shapely.box(50, 50, 55, 60)),
             (bare, shapely.box(0, 0, 9, 9))]
    features = [{"type": "Feature", "geometry": g.__geo_interface__,
                 "properties": {"scene": s.name, "score": 0.9, "max_score": 0.95, "pieces": 1}} for s, g in found]
    (tmp_path / "detections.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    monkeypatch.setattr(hil.__main__, "split_source", lambda spec: iter([sample, bare]))
    got = sd.candidates(tmp_path / "split.json", "val", tmp_path / "detections.geojson", SIZE)
    assert got.pixels.tolist() == [[140, 140], [0, 50], [0, 0]]
    assert got.truth_px == 300
    assert got.labels.tolist() == [False, False, False]  # 140 of the ship's 300 px: IoU 0.47, no match
    kept = np.array([True, True, True])
    assert sd.pooled_outline_iou(kept, got.pixels, got.truth_px) == pytest.approx(140 / 350)


def test_a_fit_chosen_by_f1_keeps_its_key_and_one_chosen_otherwise_gets_its_own() -> None:
    """Stores of fits made before ``cut_by`` existed stay valid; a search that changes it fits again."""
    split = Path(__file__)  # any file: the key hashes its bytes
    args = ({"output": {}}, {"min_area_px": 4, "min_score": 0.9}, split, "myriadx-emu", "trees")
    assert sd.fit_key(*args) == sd.fit_key(*args, cut_by="f1")
    assert sd.fit_key(*args, cut_by="f1+outline_iou") != sd.fit_key(*args)


def test_a_comparison_by_f1_is_made_again_when_the_cut_is_chosen_otherwise() -> None:
    from search.discriminate import ROWS_VERSION
    from search.final import BY_SECOND_STAGE, _by_second_stage, _compared_as_configured

    cfg = load_config()
    cfg["export"].update(discriminate=True, discriminator_kind="trees")
    compared = {"by": BY_SECOND_STAGE, "kind": "trees", "rows": ROWS_VERSION, "searched": 0.5, "final": 0.6}
    assert _compared_as_configured(compared, cfg)
    cfg["export"]["discriminator_cut_by"] = "f1+outline_iou"
    assert not _compared_as_configured(compared, cfg)
    assert _compared_as_configured({**compared, "by": _by_second_stage("f1+outline_iou")}, cfg)
    cfg["export"]["discriminate"] = False  # no second stage: a comparison by one is made again
    assert not _compared_as_configured({**compared, "by": _by_second_stage("f1+outline_iou")}, cfg)


def test_what_a_stage_was_cut_for_is_what_two_stages_are_compared_by() -> None:
    assert sd.stage_score({"val_f1": 0.7, "val_outline_iou": 0.5}) == 0.7  # older fits: chosen by F1
    assert sd.stage_score({"cut_by": "f1+outline_iou", "val_f1": 0.7, "val_outline_iou": 0.5}) == pytest.approx(1.2)


def test_an_unknown_cut_by_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    assert CUT_BY == ("f1", "f1+outline_iou")
    assert check_cut_by("f1+outline_iou") == "f1+outline_iou"
    from search.evolution import run_search

    cfg = load_config()
    cfg["export"].update(discriminate=True, discriminator_cut_by="outline_iou")
    with pytest.raises(ValueError, match=r"\[export\] discriminator_cut_by must be one of \('f1', 'f1\+outline_iou'\)"):
        run_search(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    assert load_config()["export"]["discriminator_cut_by"] == "f1"


def test_a_search_resumes_with_its_cut_chosen_otherwise(tmp_path: Path) -> None:
    """The cut is chosen after the search (the final comparison and the flight model's stage, both
    made again: above), so changing how resumes the search rather than starting it over."""
    from search.state import check_resumable

    cfg = load_config()
    check_resumable(tmp_path, cfg)
    check_resumable(tmp_path, {**cfg, "export": {**cfg["export"], "discriminator_cut_by": "f1+outline_iou"}},
                    write=False)
    with pytest.raises(ValueError, match="discriminator_kind"):
        check_resumable(tmp_path, {**cfg, "export": {**cfg["export"], "discriminator_kind": "trees"}}, write=False)


def test_a_stage_stored_before_the_outlines_were_recorded_is_reported_by_its_f1(tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    """A search resumed with a fit stored by an older version (cut by F1: the same key) ships it and
    says its F1; the outlines it never recorded are not asked for (that was a KeyError)."""
    from search.final import add_second_stage

    (tmp_path / "flight_model").mkdir()
    old = {"kind": "trees", "cut": 0.7, "val_f1": 0.7, "val_f1_cuts_replaced": 0.6}

    def stored(model: Path, split: Path, out: Path, work: Path, **kwargs: Any) -> dict[str, Any]:
        out.mkdir()
        return old

    monkeypatch.setattr(sd, "discriminate", stored)
    said: list[str] = []
    add_second_stage(tmp_path, "myriadx-emu", "trees", said.append)
    assert said == ["second stage: validation F1 0.700 at cut 0.7, chosen by f1 (the search's cuts: 0.600)"]
    assert (tmp_path / "flight_model").is_dir() and not (tmp_path / "flight_model.discriminated").exists()
