"""The fitness formula and the Pareto front."""

from __future__ import annotations

import math
from typing import Any

import pytest

from search.config import load_config
from search.fitness import fitness, pareto_front


def record(key: str, miou: float, latency: float, params: int) -> dict[str, Any]:
    return {"key": key, "parameters": params, "fitness": 0.0,
            "device_metrics": {"miou": miou, "vessel_iou": miou, "f1": miou, "estimated_latency_ms": latency,
                               "runtime_latency_p50_ms": 2 * latency}}


def test_fitness_formula() -> None:
    cfg = load_config()["fitness"]
    t, wl, ws = cfg["latency_target_ms"], cfg["latency_weight"], cfg["size_weight"]
    assert fitness(record("a", 0.8, t / 2, 50_000), cfg, 100_000) == pytest.approx(0.8 - ws * 0.5)
    assert fitness(record("a", 0.8, 4 * t, 50_000), cfg, 100_000) == pytest.approx(0.8 - 2 * wl - ws * 0.5)
    measured = {**cfg, "latency": "measured"}
    assert fitness(record("a", 0.8, 2 * t, 0), measured, 100_000) == pytest.approx(0.8 - wl * math.log2(4))
    assert fitness({"key": "x", "parameters": 1, "status": "failed"}, cfg, 100_000) is None
    with pytest.raises(ValueError, match="valid"):
        fitness(record("a", 0.8, t, 1), {**cfg, "accuracy": "dice"}, 100_000)


def test_pareto_front_keeps_exactly_the_non_dominated() -> None:
    cfg = load_config()["fitness"]
    recs = [record("fast", 0.6, 10, 50_000), record("accurate", 0.9, 40, 90_000),
            record("small", 0.6, 20, 10_000), record("dominated", 0.5, 30, 95_000)]
    assert {r["key"] for r in pareto_front(recs, cfg)} == {"fast", "accurate", "small"}


def test_pooled_accuracy_reads_the_pooled_figures() -> None:
    from search.fitness import accuracy, fitness

    record = {"key": "k", "parameters": 0,
              "device_metrics": {"f1": 0.7, "pooled": {"f1": 0.4}, "estimated_latency_ms": 10.0}}
    cfg = {"accuracy": "f1_pooled", "latency": "estimated", "latency_target_ms": 30.0, "latency_weight": 0.05,
           "size_weight": 0.0}
    assert accuracy(record, "f1_pooled") == 0.4 and accuracy(record, "f1") == 0.7
    assert fitness(record, cfg, 100_000) == pytest.approx(0.4)
    assert fitness({**record, "device_metrics": {"f1": 0.7, "estimated_latency_ms": 10.0}}, cfg, 100_000) is None
    with pytest.raises(ValueError, match="f1_pooled"):
        fitness(record, {**cfg, "accuracy": "pooled"}, 100_000)


def test_a_device_without_a_cost_model_is_ranked_by_its_measured_latency() -> None:
    """An NPU host: no Myriad X estimate, so the runtime's measured p50, labelled as such."""
    from search.fitness import latency_used

    npu = {"key": "k", "parameters": 0, "device_metrics": {"device": "NPU", "f1": 0.5, "estimated_latency_ms": None,
                                                          "runtime_latency_p50_ms": 12.0}}
    value, label = latency_used(npu, "estimated")
    assert value == 12.0 and "measured" in label and "NPU" in label
    twin = {**npu, "device_metrics": {**npu["device_metrics"], "estimated_latency_ms": 30.0}}
    assert latency_used(twin, "estimated") == (30.0, "estimated (Myriad X cost model)")
