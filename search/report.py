"""Search outputs: the best flight model bundle, and a report (plots, a table of candidates, the front).

``OUT/flight_model/``: the best candidate's bundle, its manifest completed with the on-device
metrics, the device and profile they were measured on, the fitness and the search that found it.
``OUT/report/``: ``fitness.png`` (fitness per generation), ``pareto.png`` (accuracy against the
latency the fitness used, size as marker area, the Pareto front joined), ``candidates.md`` and
``candidates.csv`` (one row per distinct candidate; its ``flight`` column marks the flight model's
candidate and those over the latency limit or the parameter budget, which never fly) and ``pareto.json``.

The latency the fitness used is the Myriad X cost model's estimate or a measured runtime p50
(:func:`search.fitness.latency_used`: measured where asked for, or where the device has no cost
model); the plot's label, each ``pareto.json`` entry's ``latency_kind`` and the flight manifest's
``fitness_latency`` say which, from the records, not from the ``[fitness] latency`` setting.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from runtime.atomic import write_atomic  # noqa: E402
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle  # noqa: E402
from search.fitness import (latency_kind, latency_ms, latency_used, objectives, pareto_front,  # noqa: E402
                            unranked_reason, within_limit)
from search.state import write_json_atomic  # noqa: E402

COLUMNS = ("key", "name", "status", "flight", "parameters", "miou", "vessel_iou", "f1", "pooled_vessel_iou",
           "pooled_f1", "est_latency_ms",
           "host_latency_p50_ms", "fitness", "train_s", "hil_s", "device", "profile", "host", "postprocessing",
           "val_f1_torch",
           "val_f1_torch_no_score_cut", "unranked_because")


#: The flight manifest's note beside a cost-model estimate.
ESTIMATE_NOTE = "Myriad X cost model (runtime.latency): an ESTIMATE, not a measurement"


def write_flight_model(best: dict[str, Any], out_dir: Path, cfg: dict[str, Any]) -> None:
    """Copy the best candidate's bundle to ``out_dir`` with the search's metrics in its manifest.

    The copy differs from the measured candidate only in its manifest (a manifest cannot hold the
    figures measured on itself), so :func:`verify_flight_model` measures the copy again.
    """
    bundle = read_bundle(best["bundle"])
    dev = best["device_metrics"]
    manifest = rewritable_manifest(bundle)
    manifest["name"] = f"nas-{best['key']}"
    manifest["metrics"] = {
        "val_miou": dev["miou"], "val_vessel_iou": dev["vessel_iou"], "val_f1": dev["f1"],
        "val_seeds": dev["val_seeds"], "device": dev["device"], "profile": dev["profile"],
        "measured_on": f"hil.run on device {dev['device']} (profile {dev['profile']}), "
                       + (f"validation samples {dev['val_seeds']} of {dev['source']}" if dev.get("source")
                          else f"validation seeds {dev['val_seeds']}") + f", {dev['aggregation']}",
        "data": dev.get("source", "synthetic"),
        "estimated_latency_ms": dev["estimated_latency_ms"],
        "estimated_latency_note": ESTIMATE_NOTE if dev["estimated_latency_ms"] is not None
        else f"no Myriad X cost-model estimate for device {dev['device']}",
        "runtime_latency_p50_ms": dev["runtime_latency_p50_ms"],
        "fitness": best["fitness"], "fitness_settings": cfg["fitness"],
        # what the fitness used: the estimate or the measured p50, whatever [fitness] latency asked
        "fitness_latency": latency_used(best, cfg["fitness"]["latency"])[1],
    }
    if "final_budget" in best:  # [final]: the search's pick trained again, and why it was kept
        manifest["metrics"]["final_training"] = {"budget": best["final_budget"], "searched": best["searched"],
                                                 "compared": best["compared"]}
    rewrite_bundle(bundle, out_dir, manifest)


#: Pixel and object scores that the shipped bundle must reproduce exactly (same IR, same data, same
#: device: the rig's figures are deterministic).
VERIFIED = ("miou", "vessel_iou", "f1")


def verify_flight_model(best: dict[str, Any], flight_model: Path, score: Any, out: Path) -> dict[str, Any]:
    """Measure the shipped ``flight_model`` bundle itself through the rig, the way its candidate was
    (``score(bundle_dir, report_root, device, profile)``), and write ``out`` (JSON): the shipped id,
    the id the rig measured, both sets of figures and whether they agree. What is shipped is then a
    bundle that was measured, not only a copy of one."""
    dev = best["device_metrics"]
    again = score(flight_model, out.parent / "flight_model_hil", dev["device"], dev["profile"])
    shipped = read_bundle(flight_model).id
    check = {
        "shipped_bundle_sha256": shipped, "measured_bundle_sha256": again["bundle_sha256"],
        "candidate_bundle_sha256": dev.get("bundle_sha256"), "device": dev["device"], "profile": dev["profile"],
        "search": {k: dev[k] for k in VERIFIED}, "shipped": {k: again[k] for k in VERIFIED},
    }
    check["identical"] = shipped == again["bundle_sha256"] and check["search"] == check["shipped"]
    write_json_atomic(out, check)
    return check


def _row(r: dict[str, Any]) -> dict[str, Any]:
    dev = r.get("device_metrics") or {}
    tr = r.get("training") or {}
    return {
        "key": r["key"], "name": r["name"], "status": r["status"], "parameters": r["parameters"],
        "miou": dev.get("miou"), "vessel_iou": dev.get("vessel_iou"), "f1": dev.get("f1"),
        # pooled over every pixel and vessel of the split (real data only): what f1_pooled and issue
        # targets read, and unlike the means not lifted by the many easy chips of open sea
        "pooled_vessel_iou": (dev.get("pooled") or {}).get("vessel_iou"),
        "pooled_f1": (dev.get("pooled") or {}).get("f1"),
        "est_latency_ms": dev.get("estimated_latency_ms"), "host_latency_p50_ms": dev.get("runtime_latency_p50_ms"),
        "fitness": r.get("fitness"),
        "train_s": (tr.get("fp32", {}).get("seconds", 0) + tr.get("aligned", {}).get("seconds", 0)) if tr else None,
        "hil_s": r.get("hil_seconds"), "device": dev.get("device"),
        # the numerics the figures were measured under (with robust_profiles: the worst one), and the
        # machine whose runtime measured host_latency_p50_ms (a Ray worker, not always this one)
        "profile": dev.get("profile"), "host": (r.get("worker") or {}).get("host"),
        **_postprocessing(tr.get("postprocessing")),
    }


def _postprocessing(post: dict[str, Any] | None) -> dict[str, Any]:
    """The post-processing chosen on validation (threshold / smallest vessel px / score cut), its
    object F1 there, and the best F1 without a score cut: what the cut is worth for this candidate."""
    if not post:
        return {"postprocessing": None, "val_f1_torch": None, "val_f1_torch_no_score_cut": None}
    chosen = post["chosen"]
    uncut = [row["f1"] for row in post["table"] if not row.get("min_score")]
    return {"postprocessing": f"{chosen['threshold']:g} / {chosen['min_area_px']} / {chosen.get('min_score', 0.0):g}",
            "val_f1_torch": chosen["f1"], "val_f1_torch_no_score_cut": max(uncut, default=None)}


def _flight(r: dict[str, Any], cfg: dict[str, Any], best: dict[str, Any] | None) -> str | None:
    """The ``flight`` cell of record ``r``: whether it became the flight model ``best`` (directly, or
    as the genome a ``[final]`` training trained again), or why it may not fly although ranked (over
    ``[fitness] latency_limit_ms`` as :func:`search.fitness.within_limit` judges it, or over ``[space]
    max_parameters``); None otherwise. So a reader sees why the pick is not simply the top row."""
    marks = []
    if best is not None and "final_budget" in best:  # the [final] network flies, not a searched bundle
        if r["key"] == best["key"]:
            marks.append("flight model's genome, trained again ([final])")
        elif r["key"] == (best.get("searched") or {}).get("key"):
            marks.append(f"flight candidate; the [final] training of {best['name']} flies in its place")
    elif best is not None and r["key"] == best["key"]:
        marks.append("flight model")
    fit = cfg["fitness"]
    if r.get("fitness") is not None and not within_limit(r, fit):
        marks.append(f"over the latency limit ({latency_ms(r, fit['latency']):.1f} > {fit['latency_limit_ms']} ms): "
                     "does not fly")
    budget = int(cfg["space"]["max_parameters"])
    if r.get("parameters") is not None and int(r["parameters"]) > budget:
        marks.append(f"over the parameter budget ({r['parameters']} > {budget}): does not fly")
    return "; ".join(marks) or None


def _fmt(v: Any) -> str:
    """A markdown table cell: a genome's name holds a "|" (``conv8-conv8/2|nearest``), which split
    its cell in two and shifted every later column of the row by one."""
    text = f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))
    return text.replace("|", "\\|").replace("\n", " ")


def _save_png(fig: Any, path: Path) -> None:
    """Save ``fig`` as a PNG at ``path`` whole or not at all, as every file of the report (the figure
    a reader opens must not be the top half of a plot)."""
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=120)
    write_atomic(path, image.getvalue())


def write_report(out: Path, generations: list[dict[str, Any]], records: dict[str, dict[str, Any]],
                 cfg: dict[str, Any], best: dict[str, Any] | None) -> Path:
    """Write ``OUT/report/`` (plots, tables, front); returns its path."""
    rep = Path(out) / "report"
    rep.mkdir(parents=True, exist_ok=True)
    rows = sorted(({**_row(r), "flight": _flight(r, cfg, best), "unranked_because": unranked_reason(r, cfg["fitness"])}
                   for r in records.values()),
                  key=lambda x: -(x["fitness"] if x["fitness"] is not None else -1e9))
    # every file of the report is written whole or not at all (runtime.atomic): one cut short (disk
    # full, a kill) was left truncated in place, a table with its last rows missing and nothing to say so
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(rep / "candidates.csv", table.getvalue().encode())
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(row[c]) for c in COLUMNS) + " |" for row in rows]
    note = ("Accuracy: on-device validation scores through hil (device column); miou, vessel_iou and f1 are "
            "means over the validation samples (or scenes), pooled_vessel_iou and pooled_f1 are pooled over "
            "every pixel and vessel of them (real data only). est_latency_ms: Myriad X "
            "cost-model ESTIMATE per tile. host_latency_p50_ms: measured in the runtime on the host column's "
            "machine. profile: the numerics the device figures were measured under (with robust_profiles the "
            "worst of them). "
            "postprocessing: threshold / smallest vessel (px) / score cut chosen on validation by pooled "
            "object F1 of the torch FP32 forward (val_f1_torch), beside the best such F1 without a score "
            "cut (val_f1_torch_no_score_cut). unranked_because: why a candidate has no fitness and no rank. "
            "flight: the candidate that became the flight model (the fittest within the latency limit), and "
            f"those that may not fly: over [fitness] latency_limit_ms = {cfg['fitness']['latency_limit_ms']} "
            "(0: none; the latency the fitness used) or over [space] max_parameters = "
            f"{cfg['space']['max_parameters']}.")
    pick = ("Flight model: none (no candidate was scored within the limits)" if best is None
            else f"Flight model: {best['name']} (key {best['key']}, fitness {_fmt(best['fitness'])})")
    write_atomic(rep / "candidates.md", ("\n".join([note, "", _fmt(pick), "", *lines]) + "\n").encode())
    front = pareto_front(list(records.values()), cfg["fitness"])
    source = cfg["fitness"]["latency"]
    write_json_atomic(rep / "pareto.json", [{"key": r["key"], "name": r["name"], "fitness": r["fitness"],
                                             "objectives": dict(zip(("accuracy", "latency_ms", "parameters"),
                                                                    objectives(r, cfg["fitness"]))),
                                             "latency_kind": latency_kind(r, source)} for r in front])

    fig, ax = plt.subplots(figsize=(6, 4))
    for g in generations:
        fits = [f for f in g["fitness"] if f is not None]
        ax.scatter([g["generation"]] * len(fits), fits, s=12, color="0.6")
    best_so_far, running = [], float("-inf")
    for g in generations:
        running = max([running, *[f for f in g["fitness"] if f is not None]])
        best_so_far.append(running)
    ax.plot([g["generation"] for g in generations], best_so_far, "-o", color="C0", label="best so far")
    ax.set(xlabel="generation", ylabel="fitness", title="fitness per generation")
    ax.legend()
    fig.tight_layout()
    _save_png(fig, rep / "fitness.png")
    plt.close(fig)

    scored = [r for r in records.values() if r.get("fitness") is not None]
    # the kinds of latency the fitness used (sorted, each once): one on a search with one hil device
    kinds = sorted({latency_kind(r, source) for r in scored}) or [f"[fitness] latency {source}"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if scored:
        objs = [objectives(r, cfg["fitness"]) for r in scored]
        ax.scatter([o[1] for o in objs], [o[0] for o in objs], s=[max(o[2] / 500, 8) for o in objs],
                   color="0.6", label="candidates (area ~ parameters)")
        fo = sorted(objectives(r, cfg["fitness"]) for r in front)
        fo = sorted(fo, key=lambda o: o[1])
        ax.plot([o[1] for o in fo], [o[0] for o in fo], "-o", color="C3", label="Pareto front")
    ax.set(xlabel=f"latency per tile, ms ({'; '.join(kinds)})",
           ylabel=f"on-device validation {cfg['fitness']['accuracy']}", title="accuracy vs latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_png(fig, rep / "pareto.png")
    plt.close(fig)
    summary = {"best": None if best is None else {"key": best["key"], "name": best["name"], "fitness": best["fitness"],
                                                  # [final]: the pick trained again (search.final.final_training)
                                                  "final_budget": best.get("final_budget")},
               "candidates": len(records), "generations": len(generations)}
    write_atomic(rep / "summary.json", json.dumps(summary, indent=1).encode())
    return rep
