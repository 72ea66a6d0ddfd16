"""hil warns (or refuses) when a scene is not what the model was trained for."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightsim.sources import open_source
from hil.fit import model_fit, scene_modality

SAR_MODEL = {"trained_for": {"modality": "sar", "gsd_m": [0.5, 15.0]}}


def test_modality_comes_from_the_format_or_the_user(tmp_path: Path) -> None:
    from tests.search.test_real_data import _hrsid_mini

    _hrsid_mini(tmp_path / "h", 2)
    hrsid = open_source(f"hrsid-mini:{tmp_path / 'h'}")
    assert scene_modality(hrsid) == "sar" and scene_modality(open_source("synthetic")) == "optical"
    assert scene_modality(open_source("synthetic:mode=sar")) == "sar"
    assert model_fit(SAR_MODEL, hrsid, [])["warnings"] == []
    optical = model_fit(SAR_MODEL, open_source("synthetic"), [3.0])
    assert "optical" in optical["warnings"][0]
    assert model_fit(SAR_MODEL, hrsid, [], modality="optical")["warnings"]
    with pytest.raises(ValueError, match="sar"):
        model_fit(SAR_MODEL, hrsid, [], modality="infrared")


def test_ground_sample_distance_outside_the_trained_range_is_named() -> None:
    fit = model_fit(SAR_MODEL, open_source("synthetic:mode=sar"), [0.1, 3.0, 40.0])
    assert len(fit["warnings"]) == 1 and "[0.1, 40.0]" in fit["warnings"][0]
    assert model_fit({}, open_source("synthetic"), [1.0])["checked"] is False


def test_counts_of_another_type_are_named() -> None:
    eight_bit = {"trained_for": SAR_MODEL["trained_for"] | {"counts": ["uint8"]}}
    sar = open_source("synthetic:mode=sar")
    assert model_fit(eight_bit, sar, [], counts=["uint8"])["warnings"] == []
    [warning] = model_fit(eight_bit, sar, [], counts=["uint16", "uint8"])["warnings"]
    assert "uint16" in warning and "uint8" in warning
    # an older manifest: the golden tile says what the model was trained on
    assert model_fit({**SAR_MODEL, "golden": {"dtype": "uint8"}}, sar, [], counts=["uint16"])["warnings"]


def test_strict_fit_refuses_before_streaming(tmp_path: Path) -> None:
    import json

    import hil
    from runtime.bundle import write_bundle
    from tests.conftest import make_brightness_bundle

    bundle = make_brightness_bundle(tmp_path / "b", size=64)
    manifest = {k: v for k, v in bundle.manifest.items() if k != "files"} | SAR_MODEL
    write_bundle(tmp_path / "sar", bundle.files["model.xml"], bundle.files["model.bin"], manifest)
    with pytest.raises(ValueError, match="optical"):
        hil.run("synthetic:size=128", tmp_path / "sar", tmp_path / "out", device="CPU", strict_fit=True)
    report = hil.run("synthetic:size=128", tmp_path / "sar", tmp_path / "out2", device="CPU").report
    assert report["model_fit"]["warnings"] and json.dumps(report)
    # the tiles said they were optical, so the runtime found every one unfit too (and served them)
    assert report["model_fit"]["runtime_tiles_unfit"] == report["tiles_sent"] == report["tiles_processed"]


def test_a_16_bit_scene_to_an_8_bit_model_is_named_by_the_rig_and_by_the_runtime(tmp_path: Path) -> None:
    import hil
    from runtime.bundle import write_bundle
    from tests.conftest import make_brightness_bundle

    bundle = make_brightness_bundle(tmp_path / "b", size=64)
    trained = {"trained_for": {"modality": "optical", "gsd_m": [1.0, 10.0], "counts": ["uint8"]}}
    manifest = {k: v for k, v in bundle.manifest.items() if k != "files"} | trained
    write_bundle(tmp_path / "m", bundle.files["model.xml"], bundle.files["model.bin"], manifest)
    report = hil.run("synthetic:size=128,dtype=uint16", tmp_path / "m", tmp_path / "out", device="CPU").report
    [warning] = report["model_fit"]["warnings"]
    assert "uint16" in warning and "uint8" in warning
    assert report["model_fit"]["runtime_tiles_unfit"] == report["tiles_sent"] == report["tiles_processed"]
    with pytest.raises(ValueError, match="uint16"):
        hil.run("synthetic:size=128,dtype=uint16", tmp_path / "m", tmp_path / "out2", device="CPU", strict_fit=True)
