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

A candidate without on-device scores (infeasible or failed) has no fitness and is never selected;
nor has one whose latency is the cost model's estimate while the estimate left op types unpriced
(``unpriced_ops``: priced by bytes alone, so the total is a lower bound that could pass the target
falsely). :func:`latency_used` then says why, naming the ops (the record's ``fitness_latency``).

The target is soft; ``latency_limit_ms`` is the hard budget of the flight model (0: none). A
candidate over it keeps its fitness and may still breed (a child of a slow parent may fit), but it
never flies (:func:`within_limit`): the flight model is the fittest candidate within the limit, and
a final training whose network is over it (a land gate adds latency) is not kept. Applied when the
flight model is chosen, not stored in the records, so a search resumes across a change of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
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

#: In :func:`latency_used`'s reason for an estimate the fitness does not accept.
NOT_ACCEPTED = "not accepted"
#: What each kind of latency :func:`latency_used` returns is called (reasons, labels, ``latency_kind``).
LATENCY_KINDS = {"estimated": "estimated (Myriad X cost model)", "measured": "measured runtime p50"}


def unpriced_ops(record: dict[str, Any]) -> list[str]:
    """Op types the cost model priced by bytes alone for this candidate (empty if none or unknown).

    Read from ``device_metrics["unpriced_ops"]``, else from the runtime's estimate as hil reports it
    (``device_metrics["latency_estimate"]["unpriced_ops"]``).
    """
    dev = record.get("device_metrics") or {}
    ops = dev.get("unpriced_ops")
    if ops is None:
        ops = (dev.get("latency_estimate") or {}).get("unpriced_ops")
    return sorted(ops or [])


def uses_estimate(record: dict[str, Any], source: str) -> bool:
    """Whether :func:`latency_used` takes the cost model's estimate (asked for, and there is one)."""
    return source == "estimated" and record["device_metrics"].get("estimated_latency_ms") is not None


def latency_used(record: dict[str, Any], source: str) -> tuple[float, str]:
    """The latency the fitness uses and what it is: the Myriad X cost model's estimate, or the
    runtime's measured p50 on the flight device (asked for, or where no cost model exists: an NPU).

    An estimate with unpriced op types (:func:`unpriced_ops`) is returned with a reason starting
    ``estimated (Myriad X cost model), not accepted`` and naming them; :func:`fitness` gives such a
    candidate no fitness, since the estimate leaves their arithmetic out.
    """
    if source not in LATENCIES:
        raise ValueError(f"fitness latency {source!r}; valid: {list(LATENCIES)}")
    dev = record["device_metrics"]
    if uses_estimate(record, source):
        unpriced = unpriced_ops(record)
        if unpriced:
            return float(dev["estimated_latency_ms"]), (
                f"{LATENCY_KINDS['estimated']}, {NOT_ACCEPTED}: op types not in the cost table, priced by "
                f"their bytes alone (the estimate is a lower bound): {', '.join(unpriced)}")
        return float(dev["estimated_latency_ms"]), LATENCY_KINDS["estimated"]
    if dev.get("runtime_latency_p50_ms") is None:
        raise ValueError(f"candidate {record['key']} has no {source} latency")
    why = "asked for" if source == "measured" else f"no cost model for {dev.get('device')}"
    return float(dev["runtime_latency_p50_ms"]), f"{LATENCY_KINDS['measured']} on {dev.get('device')} ({why})"


def latency_kind(record: dict[str, Any], source: str) -> str:
    """What the latency :func:`latency_used` takes for ``record`` is, without the why: ``"estimated
    (Myriad X cost model)"`` or ``"measured runtime p50 on DEVICE"``. For plot labels and the
    ``latency_kind`` of reports, which must say what was used, not what was asked for (a CPU
    candidate asked for an estimate is ranked by its measured p50).

    Raises:
        ValueError: as :func:`latency_used` (an unknown ``source``: valid ones are listed).
    """
    latency_used(record, source)  # the same checks, and the same choice below
    if uses_estimate(record, source):
        return LATENCY_KINDS["estimated"]
    return f"{LATENCY_KINDS['measured']} on {record['device_metrics'].get('device')}"


def latency_ms(record: dict[str, Any], source: str) -> float:
    """The latency the fitness uses (see :func:`latency_used`)."""
    return latency_used(record, source)[0]


def check_fitness_settings(cfg: dict[str, Any]) -> None:
    """``[fitness] accuracy`` and ``latency`` (``cfg`` is that table) each one of its choices; else a
    ValueError listing them. The search calls it before any candidate trains, :func:`fitness` on each."""
    for key, valid in (("accuracy", ACCURACIES), ("latency", LATENCIES)):
        if cfg[key] not in valid:
            raise ValueError(f"[fitness] {key} {cfg[key]!r}; valid: {list(valid)}")
    limit = cfg["latency_limit_ms"]
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit >= 0 or math.isinf(limit):
        raise ValueError(f"[fitness] latency_limit_ms must be a finite number of ms >= 0 (0: no limit); got {limit!r}")


def within_limit(record: dict[str, Any], cfg: dict[str, Any]) -> bool:
    """Whether a scored record may fly: its latency as the fitness takes it (:func:`latency_used`)
    at most ``[fitness] latency_limit_ms`` (``cfg`` is that table; 0: no limit)."""
    limit = float(cfg["latency_limit_ms"])
    return limit == 0 or latency_ms(record, cfg["latency"]) <= limit


def fitness(record: dict[str, Any], cfg: dict[str, Any], max_parameters: int) -> float | None:
    """F of a candidate record: None without on-device scores, when the latency is an estimate
    with unpriced op types (:func:`latency_used` says which: it may not meet the target by omission),
    or when the figures give no finite value."""
    check_fitness_settings(cfg)
    if _why_unscorable(record, cfg) is not None:
        return None
    acc = accuracy(record, cfg["accuracy"])
    assert acc is not None  # _why_unscorable said so
    lat = latency_ms(record, cfg["latency"])
    target = float(cfg["latency_target_ms"])
    penalty = cfg["latency_weight"] * math.log2(max(lat, target) / target)
    value = float(acc - penalty - cfg["size_weight"] * record["parameters"] / max_parameters)
    # a NaN would not rank last but scramble the whole order (every comparison with it is false)
    return value if math.isfinite(value) else None


def _why_unscorable(record: dict[str, Any], cfg: dict[str, Any]) -> str | None:
    """Why :func:`fitness` gives ``record`` none before any arithmetic, in its order; None when it
    computes one (which may still not be finite)."""
    if accuracy(record, cfg["accuracy"]) is None:
        return f"no on-device {cfg['accuracy']}"
    unpriced = unpriced_ops(record) if uses_estimate(record, cfg["latency"]) else []
    if unpriced:
        return f"latency estimate leaves op types unpriced: {', '.join(unpriced)}"
    return None


def unranked_reason(record: dict[str, Any], cfg: dict[str, Any]) -> str | None:
    """Why a candidate has no fitness (``[fitness]`` ``cfg``), as the report says beside it; None for
    one that has a fitness. The cases are :func:`fitness`'s own (:func:`_why_unscorable`)."""
    if record.get("fitness") is not None:
        return None
    if record.get("status") != "ok":
        return f"status {record.get('status')}"
    return _why_unscorable(record, cfg) or "figures give no finite fitness"


def ranked(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scored records, fittest first; records of equal fitness by key DESCENDING (``reverse``
    applies to the key too), so the order replays whatever order the records come in.

    The flight pick (:func:`flight_pick`) and the final training's pick (:func:`search.final.final_pick`)
    read this order. The evolution ranks its population the other way round among equals (key
    ascending: :func:`search.evolution.next_generation`), so of two genomes tied in fitness the
    evolution's elite is one and the flight model the other. Kept as it is: reversing either would
    change which model a finished search ships or the draws it replays from its records, and no
    shipped search has been shown free of such a tie. Should they ever be made one rule, the flight
    pick is the one to move (to key ascending): it reads one record, while the evolution's order
    feeds every later draw.
    """
    # (fitness, key) both descending: NOT the evolution's (-fitness, key ascending); see above
    return sorted((r for r in records if r.get("fitness") is not None), key=lambda r: (r["fitness"], r["key"]),
                  reverse=True)


def flight_pick(records: list[dict[str, Any]], fitness_cfg: dict[str, Any], say: Any = print) -> dict[str, Any] | None:
    """The fittest scored record within ``[fitness] latency_limit_ms`` (:func:`within_limit`),
    or None when there is none; says which fitter ones the limit passed over. Among records of equal
    fitness the one of the greater key (:func:`ranked`'s order, not the evolution's)."""
    scored = ranked(records)
    for record in scored:
        if within_limit(record, fitness_cfg):
            return record
        say(f"  {record['name']} (fitness {record['fitness']:.3f}) is over the latency limit: "
            f"{latency_ms(record, fitness_cfg['latency']):.1f} > {fitness_cfg['latency_limit_ms']} ms; it does not fly")
    if scored:
        say(f"no candidate is within [fitness] latency_limit_ms = {fitness_cfg['latency_limit_ms']}: no flight model")
    return None


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
