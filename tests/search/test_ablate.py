"""The ablation command on a tiny configuration: the three numbers and the breakdown are there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.profiles import get_profile
from search.ablate import format_ablation, isolating_profiles, parse_genome, run_ablation


def test_isolating_profiles_come_from_the_target_profile_data() -> None:
    p = isolating_profiles("fp16-myriadx")
    target = get_profile("fp16-myriadx")
    assert p["target"] is target
    assert p["rounding+range"].numerics == target.numerics and p["rounding+range"].ops.interpolate is None
    assert p["ops-only"].numerics.is_identity and p["ops-only"].ops == target.ops
    assert p["rounding"].numerics.overflow == "inf" and p["rounding"].numerics.subnormals == "keep"


def test_genome_argument_forms(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    g = parse_genome(None, tiny_cfg)
    assert parse_genome(json.dumps(g.to_dict()), tiny_cfg) == g
    (tmp_path / "manifest.json").write_text(json.dumps({"genome": g.to_dict()}))
    assert parse_genome(str(tmp_path / "manifest.json"), tiny_cfg) == g


@pytest.mark.slow
def test_ablation_reports_three_numbers_and_the_gap_by_cause(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    genome = {"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 12, "stride": 2}],
              "upsample": "bilinear"}
    r = run_ablation(tiny_cfg, tmp_path, genome_arg=json.dumps(genome), progress=False)
    for key in ("miou", "vessel_iou"):
        assert 0 <= r["fp32_host"][key] <= 1
        assert 0 <= r["post_training"]["device"][key] <= 1 and 0 <= r["aligned"]["device"][key] <= 1
    assert r["post_training"]["device"]["device"] == "myriadx-emu"
    rows = r["post_training"]["twin_breakdown"]
    # the in-process twin and hil's twin are one computation by two paths
    assert rows["target"]["miou"] == pytest.approx(r["post_training"]["device"]["miou"], abs=2e-3)
    assert set(r["post_training"]["gap_by_cause_miou"]) == {"rounding", "range", "op_semantics"}
    text = format_ablation(r)
    assert "FP32 on host" in text and "deployment-aligned" in text and "fraction recovered" in text
    assert (tmp_path / "ablation.json").exists()


@pytest.mark.slow
def test_ablation_of_a_16_bit_input_model_on_16_bit_scenes(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """``[export] input_dtype = "uint16"`` on 12-bit synthetic scenes: the branches' IRs take the
    counts, the device (twin) converts and normalises them, and the in-process breakdown feeds the
    same counts hil streams (its target row and hil's twin figure still agree)."""
    tiny_cfg["data"]["scene_dtype"] = "uint16"
    tiny_cfg["export"]["input_dtype"] = "uint16"
    genome = {"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 12, "stride": 2}],
              "upsample": "nearest"}
    r = run_ablation(tiny_cfg, tmp_path, genome_arg=json.dumps(genome), progress=False)
    assert r["input_dtype"] == "uint16"
    manifest = json.loads((tmp_path / "aligned" / "bundle" / "manifest.json").read_text())
    assert manifest["input"]["dtype"] == "uint16" and manifest["input"]["normalization"]["where"] == "ir"
    rows = r["post_training"]["twin_breakdown"]
    assert rows["target"]["miou"] == pytest.approx(r["post_training"]["device"]["miou"], abs=2e-3)
    assert r["fp32_host"]["device"] == "CPU"
