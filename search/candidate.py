"""One candidate, end to end: FP32 training, deployment-aligned fine-tuning, FP16 IR, scored through hil.

:func:`evaluate_candidate` is what a worker (a local process or a Ray task) runs for one genome:

1. ``candidate.fp32_epochs`` of FP32 training (BCE + Dice, Adam, cosine decay; :mod:`search.train`);
2. ``candidate.aligned_epochs`` of fine-tuning with the forward pass run the target's way
   (:mod:`search.align`: the profile the twin uses, weights and activations projected with the
   clipped straight-through gradient, the target's Interpolate semantics, BatchNorm folded);
3. export to an FP16 IR, refused if ``runtime.check`` finds an error for the target
   (:mod:`search.export_ir`), and written as a bundle;
4. ``hil.run`` of the bundle on every validation scene on ``candidate.hil_device`` (``flight``: MYRIAD
   if attached, else NPU, else the Myriad X twin): on-device mIoU, vessel IoU, F1, the runtime's
   measured latency and throughput, and the Myriad X latency *estimate*.

Its data (what is trained on, validated on and held out) is :mod:`search.dataset`'s.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import write_bundle
from search.dataset import SearchData, split_arrays, training_counts
from search.evaluate import (choose_postprocessing, confusion_of, golden_tile, object_scores, predict_scenes,
                             require_true_vessels, torch_predictor)
from search.export import INPUT_NAME, OUTPUT_NAME, ir_opsets
from search.export_ir import TargetCheckError, export_ir
from runtime.golden import with_golden
from search.input_types import with_input_dtype
from search.network import GenomeNet
from search.space import Genome, count_parameters
from search.state import RECORD_VERSION
from search.train import train_genome


def shift_sea_for_export(net: GenomeNet, cfg: dict[str, Any], log: dict[str, Any]) -> None:
    """Apply ``[export] sea_shift`` to a trained ``net`` (:meth:`GenomeNet.shift_sea`) and record it
    in its training ``log``: the one place the search and the baseline do it."""
    shift = float(cfg["export"].get("sea_shift", 0.0))
    net.shift_sea(shift)
    if shift:
        log["sea_shift"] = shift


def require_val_vessels(data: SearchData, needed_by: str) -> None:
    """Refuse ``data`` whose validation split holds no true vessel, for ``needed_by`` (the settings
    that would choose a cut on it by object F1: :func:`search.evaluate.require_true_vessels` says why
    such a cut means nothing). The search calls it before anything trains; :func:`choose_on_validation`
    again where the cut is chosen, for callers that did not.

    Raises:
        ValueError: naming the split and what to change.
    """
    grow = ("more or larger validation scenes ([data] val_scenes, val_scene_size)" if data.synthetic
            else "a larger [data] val_fraction, or a [data] source with ships in it")
    require_true_vessels(split_arrays(data, "val"), f"the validation split of {data.source!r}",
                         f"ships are needed there by {needed_by}: give it {grow}, or turn off {needed_by}")


def choose_on_validation(probs: list[np.ndarray], cfg: dict[str, Any], data: SearchData) -> dict[str, Any] | None:
    """With ``[export] choose_postprocessing``: object F1 on the validation samples (``probs``:
    the network's probability maps of them) for each threshold and smallest vessel of
    ``[export]``, and the pair chosen (None when off).

    Raises:
        ValueError: on bad ``[export] min_scores``, or a validation split without a true vessel
            (:func:`require_val_vessels`: every cut would tie, and the one that finds nothing win).
    """
    exp = cfg["export"]
    if not exp["choose_postprocessing"]:
        return None
    min_scores = [float(s) for s in exp["min_scores"]]
    if not min_scores or not all(0.0 <= s < 1.0 for s in min_scores):
        raise ValueError(f"[export] min_scores must be a non-empty list of numbers in [0, 1); got {min_scores}")
    require_val_vessels(data, "[export] choose_postprocessing")
    rows = object_scores(probs, split_arrays(data, "val"), [float(t) for t in exp["thresholds"]],
                         [int(a) for a in exp["min_areas_px"]], min_scores=min_scores)
    return {"chosen": choose_postprocessing(rows), "table": rows,
            "on": "validation split, pooled object F1 at IoU >= 0.5, torch FP32 forward of the aligned network"}


def manifest_for(genome: Genome, data: SearchData, cfg: dict[str, Any], metrics: dict[str, Any],
                 xml: bytes, training: dict[str, Any], name: str) -> dict[str, Any]:
    """A flight-model manifest: input, output, numerics, genome, parameters, metrics, opsets."""
    exp = cfg["export"]
    tile = int(exp["tile"])
    return {
        "name": name,
        "input": {"shape": [1, genome.in_channels, tile, tile], "layout": "NCHW", "name": INPUT_NAME,
                  "bands": list(exp["bands"]), "dtype": "float32", "normalization": data.norm.to_manifest()},
        "output": {"name": OUTPUT_NAME, "shape": [1, 1, tile, tile],
                   "meaning": ("vessel probability per pixel times the network's own sea probability "
                               "(land gate)" if cfg["train"]["land_gate"] != "none"
                               else "vessel probability per pixel"),
                   "threshold": float(exp["threshold"]), "activation": "sigmoid"}
        | ({"threshold": float(post["threshold"]), "min_area_px": int(post["min_area_px"]),
            **({"min_score": float(post["min_score"])} if post.get("min_score") else {})}
           if (post := (training.get("postprocessing") or {}).get("chosen")) else {}),
        "numerics": {"weights": "fp16", "trained_under": training.get("trained_under", "fp32"),
                     "profile": cfg["candidate"]["profile"],
                     **({"robust_profiles": list(cfg["candidate"]["robust_profiles"])}
                        if cfg["candidate"]["robust_profiles"] else {})},
        "trained_for": {"modality": cfg["data"]["modality"], "gsd_m": [float(g) for g in cfg["data"]["gsd_m"]],
                        "counts": training_counts(data),
                        "data": data.source if isinstance(data.source, str) else list(data.source)},
        "genome": genome.to_dict(),
        "parameters": count_parameters(genome, cfg["train"]["land_gate"]),
        "opsets": ir_opsets(xml),
        "training": training,
        "metrics": metrics,
    }


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def hil_scores(bundle_dir: Path, data: SearchData, report_root: Path, device: str,
               profile: str | None = None) -> dict[str, Any]:
    """``hil.run`` on the validation data; the mean of each scene's (or sample's) pixel scores.

    Synthetic scenes run one ``hil.run`` each; a real data set runs one over its validation samples
    (a :class:`flightsim.sources.Subset`), whose per-sample scores are averaged the same way, with
    the rig's pooled figures kept beside them. The mean is what the in-process scorer
    (:mod:`search.evaluate`) computes too; the pooled figures can differ a lot (one harbour tile
    full of false alarms dominates a pooled vessel IoU).
    """
    import hil

    if not data.synthetic:
        from flightsim.sources import Subset, open_source

        subset = Subset(open_source(data.source), data.val_seeds, role="val")
        report = hil.run(subset, bundle_dir, report_root / "val", device=device, profile=profile).report
        per_sample = [{k: s.get(k) for k in ("name", "miou", "vessel_iou", "f1")} for s in report["per_scene"]]
        return {k: report.get(k) for k in ("device", "profile", "estimated_latency_ms", "throughput_tiles_per_s",
                                           "tiles_lost")} | {
            "miou": _mean(per_sample, "miou"), "vessel_iou": _mean(per_sample, "vessel_iou"),
            "f1": _mean(per_sample, "f1"), "pooled": {k: report.get(k) for k in ("miou", "vessel_iou", "f1")},
            "runtime_latency_p50_ms": report["runtime_latency_ms"]["p50"], "val_seeds": list(data.val_seeds),
            "source": data.source, "per_scene": per_sample, "bundle_sha256": report["model"]["sha256"],
            "aggregation": "mean over validation samples of each sample's pixel scores",
            "unpriced_ops": _unpriced(report)}
    per_scene = []
    for seed in data.val_seeds:
        scene, truth = data.val_scene(seed)
        report = hil.run(scene, bundle_dir, report_root / f"seed_{seed}", device=device, truth=truth,
                         profile=profile).report
        per_scene.append({k: report.get(k) for k in (
            "miou", "vessel_iou", "precision", "recall", "f1", "tiles_sent", "tiles_processed", "tiles_lost",
            "throughput_tiles_per_s", "estimated_latency_ms", "device", "profile")}
            | {"seed": seed, "runtime_latency_p50_ms": report["runtime_latency_ms"]["p50"],
               "latency_p50_ms": report["latency_ms"]["p50"], "bundle_sha256": report["model"]["sha256"],
               "unpriced_ops": _unpriced(report)})
    return {
        "device": per_scene[0]["device"], "profile": per_scene[0]["profile"],
        "miou": _mean(per_scene, "miou"), "vessel_iou": _mean(per_scene, "vessel_iou"), "f1": _mean(per_scene, "f1"),
        "estimated_latency_ms": per_scene[0]["estimated_latency_ms"],
        "runtime_latency_p50_ms": _mean(per_scene, "runtime_latency_p50_ms"),
        "throughput_tiles_per_s": _mean(per_scene, "throughput_tiles_per_s"),
        "tiles_lost": int(sum(s["tiles_lost"] for s in per_scene)),
        "val_seeds": list(data.val_seeds), "per_scene": per_scene, "bundle_sha256": per_scene[0]["bundle_sha256"],
        "aggregation": "mean over validation scenes of each scene's pixel scores",
        "unpriced_ops": per_scene[0]["unpriced_ops"],
    }


def _unpriced(report: dict[str, Any]) -> list[str]:
    """The op types the runtime's cost model priced by bytes alone (hil's ``latency_estimate``):
    :func:`search.fitness.latency_used` refuses an estimate with any as the candidate's latency."""
    return list((report.get("latency_estimate") or {}).get("unpriced_ops") or [])


def _record_head(genome: Genome, cfg: dict[str, Any]) -> dict[str, Any]:
    """What every candidate record begins with: the genome, its size, and where it ran."""
    return {"version": RECORD_VERSION, "key": genome.key, "genome": genome.to_dict(),
            "name": str(genome), "parameters": count_parameters(genome, cfg["train"]["land_gate"]),
            # where it ran: on a cluster, the first place to look when one is slow
            "worker": {"host": socket.gethostname(), "pid": os.getpid()}}


def crashed_record(genome: Genome, cfg: dict[str, Any], reason: str) -> dict[str, Any]:
    """The ``failed`` record of a candidate whose worker process died under it (no traceback: the
    process is gone; ``worker`` names the search's process, which wrote it)."""
    return {**_record_head(genome, cfg), "status": "failed", "reason": reason, "fitness": None, "seconds": None}


def evaluate_candidate(genome: Genome, cfg: dict[str, Any], data: SearchData, out_dir: Path,
                       trained: tuple[GenomeNet, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train, align, export, check and score ``genome`` through hil; returns the candidate record.

    ``trained``: an aligned network and its training log from :func:`search.train.train_genome` run
    elsewhere (``scripts/train_elsewhere.py``: a GPU machine without OpenVINO); it is exported and
    scored here exactly as one trained here would be.

    Never raises for a bad candidate: a target-check error or a crash becomes a record with
    ``status`` ``"infeasible"`` or ``"failed"`` (persisted, so it is not retried on resume).
    """
    from search.fitness import accuracy, fitness, latency_used

    t0 = time.perf_counter()
    record = _record_head(genome, cfg)
    cand_dir = out_dir / "candidates" / genome.key
    shutil.rmtree(cand_dir, ignore_errors=True)
    try:
        cand = cfg["candidate"]
        seed = int(cfg["evolution"]["seed"])
        net, log = trained or train_genome(genome, cfg, data, seed, cand["fp32_epochs"], cand["aligned_epochs"])[1:]
        shift_sea_for_export(net, cfg, log)
        tile, threshold = int(cfg["export"]["tile"]), float(cfg["export"]["threshold"])
        val = split_arrays(data, "val")
        probs = predict_scenes(torch_predictor(net), val, data.norm, tile)  # once, for both uses below
        post = choose_on_validation(probs, cfg, data)
        threshold = float(post["chosen"]["threshold"]) if post else threshold
        host = confusion_of(probs, val, threshold)
        xml, bin_, findings = export_ir(net, (1, genome.in_channels, tile, tile), cand["check_target"])
        # robust alignment draws each step's profile from robust_profiles, not [candidate] profile
        aligned_under = (f"aligned under each of {list(cand['robust_profiles'])} (one drawn per step)"
                         if cand["robust_profiles"] else f"{cand['profile']}-aligned")
        # from the log, which says how this network was trained (here, or elsewhere: ``trained``)
        training = {"trained_under": f"fp32 {log['fp32']['epochs']} epochs, then {aligned_under} "
                                    f"{log['aligned']['epochs']} epochs", "seed": seed, **log,
                    "data": data.source,
                    **({"train_seeds": [data.train_seeds[0], data.train_seeds[-1]]} if data.synthetic
                       else {"train_samples": list(data.train_seeds)})}
        if post:
            training["postprocessing"] = post
        bundle_dir = cand_dir / "bundle"
        manifest = manifest_for(genome, data, cfg, {}, xml, training, f"nas-{genome.key}")
        write_bundle(bundle_dir, *with_input_dtype(xml, bin_, manifest, cfg["export"]["input_dtype"]))
        # expected output measured on the flight device itself: the twin remaps what the CPU runs as written
        with_golden(bundle_dir, golden_tile(val, tile), device=cand["hil_device"], require_vessels=False)
        t_eval = time.perf_counter()
        if cand["robust_profiles"]:
            # Scored under every hypothesis of the set; the fitness sees the worst of them.
            by_profile = {p: hil_scores(bundle_dir, data, cand_dir / "hil" / p, cand["hil_device"], p)
                          for p in cand["robust_profiles"]}
            metric = cfg["fitness"]["accuracy"]
            worst = min(by_profile, key=lambda p: accuracy({"device_metrics": by_profile[p]}, metric) or 0.0)
            device = {**by_profile[worst], "worst_of": sorted(by_profile),
                      "by_profile": {p: {k: m.get(k) for k in ("miou", "vessel_iou", "f1", "pooled")}
                                     for p, m in by_profile.items()}}
        else:
            device = hil_scores(bundle_dir, data, cand_dir / "hil", cand["hil_device"])
        record.update(status="ok", device_metrics=device,
                      host_fp32_aligned_weights={"miou": host.miou, "vessel_iou": host.vessel_iou,
                                                 "note": "torch forward in FP32 of the aligned network"},
                      check_findings=[f.to_json() for f in findings if f.severity != "info"],
                      training=training, hil_seconds=time.perf_counter() - t_eval, bundle=str(bundle_dir))
        record["fitness"] = fitness(record, cfg["fitness"], cfg["space"]["max_parameters"])
        record["fitness_latency"] = latency_used(record, cfg["fitness"]["latency"])[1]
    except TargetCheckError as err:
        record.update(status="infeasible", reason=str(err), fitness=None)
    except Exception as err:  # a crashed candidate is a result, not the end of the search
        record.update(status="failed", reason=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(limit=5), fitness=None)
    record["seconds"] = time.perf_counter() - t0
    return record
