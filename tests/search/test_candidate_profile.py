"""A candidate aligned to profile P is scored on the twin under P, not under the twin's default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search.candidate import evaluate_candidate
from search.dataset import prepare_data
from search.space import Genome


def test_a_candidate_aligned_to_fp16_ieee_is_scored_under_fp16_ieee(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    tiny_cfg["candidate"]["profile"] = "fp16-ieee"
    data = prepare_data(tiny_cfg, tmp_path / "data")
    genome = Genome.from_dict({"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 12, "stride": 2}],
                               "upsample": "nearest"})
    record = evaluate_candidate(genome, tiny_cfg, data, tmp_path / "search")
    assert record["status"] == "ok", record.get("reason")
    assert record["device_metrics"]["device"] == "myriadx-emu"
    assert record["device_metrics"]["profile"] == "fp16-ieee"
    report = next((tmp_path / "search").rglob("report.json"))
    assert json.loads(report.read_text())["numerics"]["profile_source"] == "manifest numerics.profile"


def test_the_default_space_upsamples_only_in_ways_every_myriad_hypothesis_agrees_on() -> None:
    """bilinear_corners exports as an align_corners Interpolate (native on the VPU): the twin gives
    the same output under fp16-myriadx and under myriadx-native-interp; half_pixel bilinear does not."""
    import numpy as np

    from runtime.emulate import compile_twin
    from runtime.ov_api import Core
    from search.config import load_config
    from search.export_ir import export_ir
    from search.network import GenomeNet

    assert "bilinear" not in load_config()["space"]["upsamplings"]
    core = Core()
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    outputs = {}
    for upsample in ("bilinear_corners", "bilinear"):
        genome = Genome.from_dict({"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 12, "stride": 2}],
                                   "upsample": upsample})
        xml, bin_, findings = export_ir(GenomeNet(genome).eval(), (1, 3, 64, 64))
        for name in ("fp16-myriadx", "myriadx-native-interp"):
            compiled, _ = compile_twin((xml, bin_), name, core)
            request = compiled.create_infer_request()
            request.infer({0: x})
            outputs[upsample, name] = request.get_output_tensor(0).data.copy()
    assert np.array_equal(outputs["bilinear_corners", "fp16-myriadx"], outputs["bilinear_corners", "myriadx-native-interp"])
    assert not np.array_equal(outputs["bilinear", "fp16-myriadx"], outputs["bilinear", "myriadx-native-interp"])


def test_robust_alignment_draws_from_the_set_and_the_fitness_takes_the_worst(tmp_path: Path,
                                                                            tiny_cfg: dict[str, Any]) -> None:
    tiny_cfg["candidate"]["robust_profiles"] = ["fp16-myriadx", "myriadx-native-interp"]
    data = prepare_data(tiny_cfg, tmp_path / "data")
    genome = Genome.from_dict({"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 12, "stride": 2}],
                               "upsample": "bilinear"})
    record = evaluate_candidate(genome, tiny_cfg, data, tmp_path / "search")
    assert record["status"] == "ok", record.get("reason")
    dev = record["device_metrics"]
    assert dev["worst_of"] == ["fp16-myriadx", "myriadx-native-interp"] and set(dev["by_profile"]) == set(dev["worst_of"])
    assert dev["miou"] == min(m["miou"] for m in dev["by_profile"].values())
    assert dev["profile"] in dev["worst_of"]
    reports = {json.loads(p.read_text())["profile"] for p in (tmp_path / "search").rglob("report.json")}
    assert reports == {"fp16-myriadx", "myriadx-native-interp"}
    # the record and the bundle say what the network was trained under: every profile of the set
    assert "['fp16-myriadx', 'myriadx-native-interp']" in record["training"]["trained_under"]
    numerics = json.loads((Path(record["bundle"]) / "manifest.json").read_text())["numerics"]
    assert numerics["robust_profiles"] == ["fp16-myriadx", "myriadx-native-interp"]
