"""What latency the fitness used, said wherever it is reported (search/fitness.py, search/report.py):
an estimate with op types the cost model priced by bytes alone is not accepted, and the Pareto plot,
``pareto.json`` and the flight manifest name the latency the fitness actually used (a measured p50
where the device has no cost model or one was asked for), not the ``[fitness] latency`` setting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from search import report
from search.fitness import fitness, latency_kind, latency_used, pareto_front, unpriced_ops

MAX_PARAMETERS = 100_000


def _cfg(latency: str) -> dict[str, Any]:
    return {"fitness": {"accuracy": "miou", "latency": latency, "latency_target_ms": 30.0, "latency_weight": 0.05,
                        "size_weight": 0.02, "latency_limit_ms": 0.0},
            # the report's flight column reads the budget (search.report._flight), as a loaded config has it
            "space": {"max_parameters": MAX_PARAMETERS}}


def _record(device: str = "myriadx-emu", estimate: float | None = 25.0, **dev: Any) -> dict[str, Any]:
    return {"key": "k1", "name": "conv16", "status": "ok", "parameters": 1000, "bundle": "models/default",
            "device_metrics": {"device": device, "profile": None, "miou": 0.8, "vessel_iou": 0.5, "f1": 0.6,
                               "val_seeds": [1], "aggregation": "mean", "estimated_latency_ms": estimate,
                               "runtime_latency_p50_ms": 400.0, **dev}}


# -- defect 1: an estimate with unpriced ops does not meet the target ----------------------------------


@pytest.mark.parametrize("dev", [{"unpriced_ops": ["LSTMSequence"]},
                                 {"latency_estimate": {"estimated_latency_ms": 25.0,
                                                       "unpriced_ops": ["LSTMSequence"]}}])
def test_estimate_with_unpriced_ops_gets_no_fitness_and_a_reason_naming_them(dev: dict[str, Any]) -> None:
    rec = _record(**dev)
    assert unpriced_ops(rec) == ["LSTMSequence"]
    assert fitness(rec, _cfg("estimated")["fitness"], MAX_PARAMETERS) is None
    value, why = latency_used(rec, "estimated")
    assert value == 25.0 and "not accepted" in why and "LSTMSequence" in why
    assert pareto_front([{**rec, "fitness": None}], _cfg("estimated")["fitness"]) == []


def test_unpriced_ops_do_not_matter_to_a_measured_latency() -> None:
    rec = _record(unpriced_ops=["LSTMSequence"])
    assert fitness(rec, _cfg("measured")["fitness"], MAX_PARAMETERS) is not None


def test_estimate_with_every_op_priced_is_accepted() -> None:
    rec = _record(unpriced_ops=[])
    assert fitness(rec, _cfg("estimated")["fitness"], MAX_PARAMETERS) is not None
    assert latency_used(rec, "estimated")[1] == "estimated (Myriad X cost model)"


# -- defect 2: reports say what the fitness used ------------------------------------------------------


def _report(tmp_path: Path, rec: dict[str, Any], cfg: dict[str, Any],
            monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[dict[str, Any]]]:
    from matplotlib.axes import Axes

    labels: list[str] = []
    original = Axes.set

    def spy(self: Axes, **kw: Any) -> Any:
        if "xlabel" in kw:
            labels.append(kw["xlabel"])
        return original(self, **kw)

    monkeypatch.setattr(Axes, "set", spy)
    rec["fitness"] = fitness(rec, cfg["fitness"], MAX_PARAMETERS)
    rep = report.write_report(tmp_path, [{"generation": 0, "fitness": [rec["fitness"]]}], {"k1": rec}, cfg, rec)
    return labels[-1], json.loads((rep / "pareto.json").read_text())


@pytest.mark.parametrize("device, estimate, latency, kind", [
    ("CPU", None, "estimated", "measured runtime p50 on CPU"),  # no cost model for the CPU
    ("myriadx-emu", 25.0, "measured", "measured runtime p50 on myriadx-emu"),
    ("myriadx-emu", 25.0, "estimated", "estimated (Myriad X cost model)"),
])
def test_pareto_label_and_json_name_the_latency_used(device: str, estimate: float | None, latency: str, kind: str,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _record(device, estimate)
    assert latency_kind(rec, latency) == kind
    label, front = _report(tmp_path, rec, _cfg(latency), monkeypatch)
    assert kind in label
    assert ("cost model" in label) == (kind.startswith("estimated"))
    assert [entry["latency_kind"] for entry in front] == [kind]


def test_flight_manifest_records_the_latency_the_fitness_used(tmp_path: Path) -> None:
    rec = _record("CPU", None)
    cfg = _cfg("estimated")
    rec["fitness"] = fitness(rec, cfg["fitness"], MAX_PARAMETERS)
    report.write_flight_model(rec, tmp_path / "flight", cfg)
    metrics = json.loads((tmp_path / "flight" / "manifest.json").read_text())["metrics"]
    assert metrics["fitness_latency"] == "measured runtime p50 on CPU (no cost model for CPU)"
    assert "ESTIMATE" not in metrics["estimated_latency_note"]
    assert metrics["estimated_latency_ms"] is None


def test_flight_manifest_keeps_the_estimate_note_when_the_estimate_was_used(tmp_path: Path) -> None:
    rec = _record("myriadx-emu", 25.0)
    cfg = _cfg("estimated")
    rec["fitness"] = fitness(rec, cfg["fitness"], MAX_PARAMETERS)
    report.write_flight_model(rec, tmp_path / "flight", cfg)
    metrics = json.loads((tmp_path / "flight" / "manifest.json").read_text())["metrics"]
    assert metrics["estimated_latency_note"] == report.ESTIMATE_NOTE
    assert metrics["fitness_latency"] == "estimated (Myriad X cost model)"


def test_latency_kind_lists_valid_sources() -> None:
    with pytest.raises(ValueError, match="valid: \\['estimated', 'measured'\\]"):
        latency_kind(_record(), "guessed")
