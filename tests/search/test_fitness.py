"""The fitness formula and the Pareto front."""

from __future__ import annotations

import math
from typing import Any

import pytest

from search.config import load_config
from search.fitness import fitness, pareto_front


def record(key: str, miou: float, latency: float, params: int) -> dict[str, Any]:
    return {"key": key, "name": f"nas-{key}", "parameters": params, "fitness": 0.0,
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
    cfg = {"accuracy": "f1_pooled", "latency": "estimated", "latency_target_ms": 30.0, "latency_limit_ms": 0.0,
           "latency_weight": 0.05, "size_weight": 0.0}
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


def test_the_flight_model_is_the_fittest_within_the_latency_limit() -> None:
    """[fitness] latency_limit_ms is hard for what flies: a fitter candidate over it is passed over
    (and said so); with none within it there is no flight model; 0 is no limit."""
    from search.fitness import flight_pick

    cfg = {**load_config()["fitness"], "latency_limit_ms": 30.0}
    fast, slow = record("fast", 0.6, 25.0, 1000), record("slow", 0.8, 33.0, 1000)
    fast["fitness"], slow["fitness"] = 0.6, 0.79
    said: list[str] = []
    assert flight_pick([slow, fast], cfg, said.append) is fast
    assert len(said) == 1 and "33.0 > 30.0 ms" in said[0]
    assert flight_pick([{**fast, "device_metrics": {**fast["device_metrics"], "estimated_latency_ms": 30.0}}],
                       cfg, said.append)["key"] == "fast"  # at the limit is within it
    said.clear()
    assert flight_pick([slow, {**fast, "fitness": None}], cfg, said.append) is None
    assert "no candidate is within" in said[-1]
    assert flight_pick([slow, fast], {**cfg, "latency_limit_ms": 0.0}, said.append) is slow
    measured = {**cfg, "latency": "measured"}  # the limit is in the latency the fitness takes
    assert flight_pick([slow, fast], measured, said.append) is None  # p50 50 ms and 66 ms


@pytest.mark.parametrize("limit", [-1.0, math.inf, math.nan, True, "30"])
def test_a_latency_limit_that_is_not_a_budget_is_refused(limit: Any) -> None:
    cfg = {**load_config()["fitness"], "latency_limit_ms": limit}
    with pytest.raises(ValueError, match=r"\[fitness\] latency_limit_ms must be a finite number"):
        fitness(record("a", 0.8, 10.0, 1), cfg, 100_000)


def test_a_figure_that_is_not_a_number_gives_no_fitness_and_leaves_the_ranking_alone() -> None:
    """A NaN fitness would not rank last: every comparison with it is false, so it scrambled the
    order of the others (``ranked`` gave 0.5 before 0.7, and ``flight_pick`` the wrong model)."""
    from search.fitness import ranked

    cfg = load_config()["fitness"]
    broken = record("b", math.nan, 10, 50_000)
    assert fitness(broken, cfg, 100_000) is None
    recs = [{**record(k, m, 10, 50_000), "fitness": fitness(record(k, m, 10, 50_000), cfg, 100_000)}
            for k, m in (("a", 0.5), ("b", math.nan), ("c", 0.7))]
    assert [r["key"] for r in ranked(recs)] == ["c", "a"]
