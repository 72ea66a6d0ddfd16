"""The final pick holds an unpriced estimate of the final recipe to what it is: a lower bound."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from runtime.latency import estimate_latency, load_costs
from search.config import load_config

GENOME = json.loads((Path(__file__).resolve().parents[2] / "models" / "sar" / "manifest.json").read_text())["genome"]


def _record(ms: float) -> dict:
    dev = {"device": "myriadx-emu", "miou": 0.5, "estimated_latency_ms": ms, "unpriced_ops": []}
    return {"key": "k", "name": "nas-k", "fitness": 0.5, "genome": GENOME, "parameters": 1, "device_metrics": dev}


def test_a_final_recipe_whose_estimate_leaves_ops_unpriced_is_not_taken_as_within_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Priced in full, models/sar's genome fits a generous limit and is picked; with Broadcast
    (its nearest upsampling) taken out of the cost table the estimate is a lower bound, and the
    pick refuses it instead of training a network nobody showed can fly."""
    import search.final
    from search.final import final_pick

    cfg = load_config()
    cfg["fitness"]["latency_limit_ms"] = 1000.0
    cfg["final"]["over_limit"] = "next_genome"
    said: list[str] = []
    assert final_pick([_record(29.0)], cfg, None, said.append) == (_record(29.0), False)  # type: ignore[arg-type]
    data_ops = [op for op in load_costs()["ops"]["data"] if op != "Broadcast"]
    monkeypatch.setattr(search.final, "estimate_latency",
                        functools.partial(estimate_latency, costs={"ops": {"data": data_ops}}))
    assert final_pick([_record(29.0)], cfg, None, said.append) is None  # type: ignore[arg-type]
    assert "would take at least" in said[-1] and "Broadcast" in said[-1] and "not trained again" in said[-1]


def test_price_genome_shows_an_unpriced_estimate_as_a_lower_bound(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/price_genome.py prices by the same function, and says the same of such a total."""
    import sys

    import search.final

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import price_genome

    manifest = str(Path(__file__).resolve().parents[2] / "models" / "sar" / "manifest.json")
    assert price_genome.price(manifest, "none")["unpriced_ops"] == []
    data_ops = [op for op in load_costs()["ops"]["data"] if op != "Broadcast"]
    monkeypatch.setattr(search.final, "estimate_latency",
                        functools.partial(estimate_latency, costs={"ops": {"data": data_ops}}))
    assert price_genome.main([manifest, "--land-gates", "none"]) == 0
    out = capsys.readouterr().out
    assert "| >= " in out and "(unpriced: Broadcast)" in out
