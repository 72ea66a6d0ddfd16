"""search retype on a model whose counts a uint8 input cannot hold (its mean beyond 255)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.bundle import extra_files, read_bundle, rewritable_manifest, write_bundle
from search.input_types import retype_bundle

DEFAULT = Path(__file__).resolve().parents[2] / "models" / "default"


def _wide_model(out: Path) -> Path:
    """models/default's IR described as a model of 12-bit counts (means 1200-1400), as an older
    bundle of 16-bit data without ``trained_for.counts`` or a golden tile would be."""
    src = read_bundle(DEFAULT)
    manifest = rewritable_manifest(src)
    manifest["input"]["normalization"] = {"where": "host", "mean": [1200.0, 1300.0, 1400.0],
                                          "std": [400.0, 410.0, 420.0]}
    write_bundle(out, src.files["model.xml"], src.files["model.bin"], manifest, extra_files(src))
    return out


def test_uint8_retype_of_a_model_of_wider_counts_is_refused(tmp_path: Path) -> None:
    """Its padding would be 255 counts (normalising to -2.4, not about 0) and no uint8 tile could
    hold the counts it was trained on: refused, naming the types that can."""
    src = _wide_model(tmp_path / "wide")
    with pytest.raises(ValueError, match=r"1400.*outside uint8.*valid input types for it: \['float32', 'uint16'\]"):
        retype_bundle(src, tmp_path / "u8", "uint8")
    assert not (tmp_path / "u8").exists()


def test_uint16_retype_of_a_model_of_wider_counts_pads_with_its_mean(tmp_path: Path) -> None:
    src = _wide_model(tmp_path / "wide")
    bundle = retype_bundle(src, tmp_path / "u16", "uint16")
    assert bundle.manifest["input"]["normalization"]["pad"] == [1200, 1300, 1400]


def test_uint8_retype_of_a_model_trained_on_uint16_counts_is_refused_leaving_no_out_dir(tmp_path: Path) -> None:
    """The manifest's ``trained_for.counts`` refuses a uint8 copy of a uint16-trained network (the
    bundle reader's check); the refused write had made ``--out`` first and left it there, empty."""
    src = read_bundle(DEFAULT)
    manifest = rewritable_manifest(src)
    manifest["trained_for"]["counts"] = ["uint16"]
    write_bundle(tmp_path / "wide", src.files["model.xml"], src.files["model.bin"], manifest, extra_files(src))
    with pytest.raises(ValueError, match=r"cannot hold the uint16 counts of trained_for.counts; valid for them: "
                                         r"\['float32', 'uint16'\]"):
        retype_bundle(tmp_path / "wide", tmp_path / "u8", "uint8")
    assert not (tmp_path / "u8").exists()
