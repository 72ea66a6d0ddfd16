"""Hardware-aware fitness and the Pareto front of on-device accuracy, latency and size.

The fitness of a candidate (table ``[fitness]`` of ``search/defaults.toml``)::

    F = A - w_L * log2(max(L, L_target) / L_target) - w_P * P / P_budget

* ``A``: on-device validation accuracy through hil (``accuracy``: mIoU by default), so the number
  optimised is the number the payload produces;
* ``L``: latency per tile on the Myriad X: the cost model's ESTIMATE (``runtime.latency``) by
  default, or the runtime's measured p50 (``latency = "measured"``, meaningful only on a real MYRIAD:
  the twin's host time says nothing about the VPU). Below the target latency costs nothing; each
  doubling past it costs ``w_L`` (a log, not a ratio: no term that saturates as the ESA framework's
  ``min(FPS / FPS_target, 1)`` did, and no reward for being faster than needed);
* ``P / P_budget``: parameters over the budget; a small tie-breaker for smaller models.

A candidate without on-device scores (infeasible or failed) has no fitness and is never selected.
"""

from __future__ import annotations

import math
from typing import Any

#: ``miou``, ``vessel_iou``, ``f1``: the mean over validation scenes (samples) of each one's score;
#: ``*_pooled``: over all pixels and all vessels of the validation split at once (real data sets
#: only), where one sample full of false alarms weighs what it costs a user.
ACCURACIES = ("miou", "vessel_iou", "f1", "miou_pooled", "vessel_iou_pooled", "f1_pooled")


def accuracy(record: dict[str, Any], name: str) -> float | None:
    """The accuracy ``name`` of a candidate record (None when it has none)."""
    dev = record.get("device_metrics") or {}
    if name.endswith("_pooled"):
        return (dev.get("pooled") or {}).get(name[: -len("_pooled")])
    return dev.get(name)


LATENCIES = ("estimated", "measured")


def latency_used(record: dict[str, Any], source: str) -> tuple[float, str]:
    """The latency the fitness uses and what it is: the Myriad X cost model's estimate, or the
    runtime's measured p50 on the flight device (asked for, or where no cost model exists: an NPU)."""
    if source not in LATENCIES:
        raise ValueError(f"fitness latency {source!r}; valid: {list(LATENCIES)}")
    dev = record["device_metrics"]
    if source == "estimated" and dev.get("estimated_latency_ms") is not None:
        return float(dev["estimated_latency_ms"]), "estimated (Myriad X cost model)"
    if dev.get("runtime_latency_p50_ms") is None:
        raise ValueError(f"candidate {record['key']} has no {source} latency")
    why = "asked for" if source == "measured" else f"no cost model for {dev.get('device')}"
    return float(dev["runtime_latency_p50_ms"]), f"measured runtime p50 on {dev.get('device')} ({why})"


def latency_ms(record: dict[str, Any], source: str) -> float:
    """The latency the fitness uses (see :func:`latency_used`)."""
    return latency_used(record, source)[0]


def check_fitness_settings(cfg: dict[str, Any]) -> None:
    """``[fitness] accuracy`` and ``latency`` (``cfg`` is that table) each one of its choices; else a
    ValueError listing them. The search calls it before any candidate trains, :func:`fitness` on each."""
    for key, valid in (("accuracy", ACCURACIES), ("latency", LATENCIES)):
        if cfg[key] not in valid:
            raise ValueError(f"[fitness] {key} {cfg[key]!r}; valid: {list(valid)}")


def fitness(record: dict[str, Any], cfg: dict[str, Any], max_parameters: int) -> float | None:
    """F of a candidate record (None without on-device scores)."""
    check_fitness_settings(cfg)
    acc = accuracy(record, cfg["accuracy"])
    if acc is None:
        return None
    lat = latency_ms(record, cfg["latency"])
    target = float(cfg["latency_target_ms"])
    penalty = cfg["latency_weight"] * math.log2(max(lat, target) / target)
    return float(acc - penalty - cfg["size_weight"] * record["parameters"] / max_parameters)


def objectives(record: dict[str, Any], cfg: dict[str, Any]) -> tuple[float, float, float]:
    """(accuracy, latency ms, parameters): the first maximised, the others minimised."""
    return (float(accuracy(record, cfg["accuracy"])), latency_ms(record, cfg["latency"]),  # type: ignore[arg-type]
            float(record["parameters"]))


def pareto_front(records: list[dict[str, Any]], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The records no other record dominates (at least as good in all three, better in one)."""
    scored = [r for r in records if r.get("fitness") is not None]
    objs = [objectives(r, cfg) for r in scored]

    def dominates(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2] and a != b

    return [r for r, o in zip(scored, objs) if not any(dominates(p, o) for p in objs)]
