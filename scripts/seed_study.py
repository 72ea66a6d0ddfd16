"""Train one genome several times (training seeds) exactly as the search trains a candidate, and
score each on the held-out test split through hil on the flight device: the spread a single
figure hides, and the fair comparison of a searched network with a hand-designed one.

    .venv/bin/python scripts/seed_study.py --config configs/sar.toml --genome out/sar/flight_model/manifest.json \\
        --seeds 0 1 2 --out out/seeds-searched
    .venv/bin/python scripts/seed_study.py --config configs/sar.toml --seeds 0 1 2 --out out/seeds-hand  # [ablate]

Each seed: ``search.candidate.evaluate_candidate`` (FP32 + aligned epochs, export, target check,
hil on the validation split), then ``hil run --split OUT/data/split.json:test`` of its bundle.
With ``--discriminate`` each seed's bundle also gets its own second stage
(``search.discriminate``: fitted on the training split, cut on the validation split; of the kind
``[export] discriminator_kind`` names, or ``--kind``) and that bundle is scored on the test split
too (``test_discriminated``), so a searched and a hand-designed network are compared with the same
post-processing. With ``--final`` each seed is trained as the search's final training trains its
pick (``[final]``, its ``[final.train]`` and ``[final.export]``: ``search.final.final_config``)
rather than as a candidate: the spread over training seeds of the flight model's own recipe
(``--candidates-gate``: with the candidates' land gate, as ``[final] over_limit = "drop_gate"``
trains it). With
``--part val`` the bundles are scored on the validation split instead: a probe whose outcome
chooses a recipe must not look at test (the figures keep their keys, and ``recipe.scored_on``
says which part they are). Writes OUT/study.json (per seed, and mean ± sample sd over the runs with the seeds
they are over: :func:`spreads`; each run's host and date, and ``hosts``, every host its runs came
from, since a study may be resumed elsewhere) and prints a line per seed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hil  # noqa: E402
from hil.__main__ import split_source  # noqa: E402
from hil.score import ious, precision_recall_f1, summed_counts  # noqa: E402
from runtime.discriminate import KINDS  # noqa: E402
from runtime.device import resolve  # noqa: E402
from runtime.atomic import write_atomic  # noqa: E402
from runtime.device_names import device_family  # noqa: E402
from runtime.host import host_line  # noqa: E402
from search.ablate import parse_genome  # noqa: E402
from search.config import CUT_BY, load_config  # noqa: E402
from search.candidate import evaluate_candidate  # noqa: E402
from search.dataset import prepare_data  # noqa: E402
from search.discriminate import discriminate  # noqa: E402
from search.final import final_config  # noqa: E402

#: The parts of a split a study may score on: the test split for figures to report, the validation
#: the flight device a study is scored on unless ``--device`` says otherwise (the twin).
DEFAULT_DEVICE = "myriadx-emu"

#: split for a probe whose outcome chooses a recipe (choosing on test would tune to it).
PARTS = ("test", "val")

KEYS = ("f1", "precision", "recall", "vessel_iou", "outline_vessel_iou", "miou")


def test_scores(bundle: Path, split: Path, out: Path, device: str, part: str = "test") -> dict[str, Any]:
    """Pooled scores of ``bundle`` on the ``part`` samples of ``split`` ("test", or "val" for a study
    whose figures decide something), per data set too."""
    if part not in PARTS:
        raise ValueError(f"part {part!r}; valid: {list(PARTS)}")
    report = hil.run(split_source(f"{split}:{part}"), bundle, out, device=device, progress=False).report
    by_set: dict[str, list[dict[str, Any]]] = {}
    for scene in report["per_scene"]:
        by_set.setdefault(str(scene.get("name", "")).split("/")[0], []).append(scene)
    # the device and profile as the rig resolved them: "flight" names the stick, an NPU or the twin
    return {**{k: report.get(k) for k in KEYS}, "tiles_lost": report["tiles_lost"],
            "by_set": {name: _pool(rows) for name, rows in by_set.items()},
            "bundle_sha256": report["model"]["sha256"], "device": report.get("device"),
            "profile": report.get("profile")}


def _pool(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Object and pixel scores pooled over some samples of a report (one data set of several)."""
    tp = sum(r.get("true_positives", 0) for r in rows)
    n_pred = sum(r.get("n_predicted", 0) for r in rows)
    n_truth = sum(r.get("n_truth", 0) for r in rows)
    p, r, f1 = precision_recall_f1(tp, n_pred, n_truth)
    pixels = {key: ious(summed_counts([r[counts] for r in rows]))["vessel_iou"]
              for key, counts in (("vessel_iou", "pixel_counts"), ("outline_vessel_iou", "outline_pixel_counts"))
              if all(counts in r for r in rows)}
    return {"samples": len(rows), "n_truth": n_truth, "n_predicted": n_pred, "precision": p, "recall": r, "f1": f1,
            **pixels}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--genome", help="JSON, a JSON file or a bundle manifest (default: [ablate])")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default=DEFAULT_DEVICE, help="flight device for the scored split (default the twin)")
    parser.add_argument("--part", choices=PARTS, default="test",
                        help="score on the test split (default) or on validation, for a probe that chooses something; "
                             "the figures keep their keys (test, test_discriminated) and study.json records the part")
    parser.add_argument("--discriminate", action="store_true",
                        help="also fit each seed's discriminator (train/val) and score that bundle on --part")
    parser.add_argument("--kind", choices=KINDS, help="the discriminator's kind (default: [export] discriminator_kind)")
    parser.add_argument("--cut-by", choices=CUT_BY,
                        help="what the discriminator's cut is chosen for (default: [export] discriminator_cut_by)")
    parser.add_argument("--final", action="store_true",
                        help="train each seed with the final training's recipe ([final]) instead of a candidate's")
    parser.add_argument("--candidates-gate", action="store_true",
                        help="with --final: that recipe with the candidates' land gate and sea shift, as the search "
                             "trains it when the recipe's gate is over the latency limit ([final] over_limit)")
    args = parser.parse_args(argv)
    if args.candidates_gate and not args.final:
        parser.error("--candidates-gate changes the final recipe: it needs --final")
    cfg = load_config(args.config)
    budget = None
    if args.final:
        if int(cfg["final"]["fp32_epochs"]) < 1:  # else a network of 0 FP32 epochs is scored as the final recipe
            parser.error(f"--final needs a final training: {args.config} has [final] fp32_epochs = "
                         f"{cfg['final']['fp32_epochs']} (0: none)")
        cfg, budget = final_config(cfg, args.candidates_gate)
    kind = args.kind or cfg["export"]["discriminator_kind"]
    cut_by = args.cut_by or cfg["export"]["discriminator_cut_by"]
    genome = parse_genome(args.genome, cfg)
    data = prepare_data(cfg, args.out / "data")
    path = args.out / "study.json"
    study = json.loads(path.read_text()) if path.exists() else {
        "config": str(args.config), "genome": genome.to_dict(), "name": str(genome), "runs": []}
    recipe = {"final_budget": budget, "discriminator_kind": kind if args.discriminate else None}
    if args.discriminate and cut_by != "f1":  # a study of cuts chosen by F1 has no key (those before it)
        recipe["discriminator_cut_by"] = cut_by
    if args.part != "test":  # a study scored on validation is another study (older ones have no key)
        recipe["scored_on"] = args.part
    # so is one scored on another device: one mean must not mix two. By the device the name is here:
    # "flight" is the stick on one host and the twin on another (by family: the same stick on another
    # port is the same device)
    try:
        device = device_family(resolve(args.device))
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    if device != DEFAULT_DEVICE:
        recipe["device"] = device
    if study.get("recipe", recipe) != recipe:
        raise SystemExit(f"{path} was made with {study['recipe']}, not {recipe}: use another --out")
    if study["genome"] != genome.to_dict() or Path(study["config"]).resolve() != Path(args.config).resolve():
        raise SystemExit(f"{path} is a study of {study['name']} under {study['config']}, not of {genome} under "
                         f"{args.config}: use another --out")
    study["recipe"] = recipe
    # Each run says where it ran: a study resumed on another host overwrote the one host it named, so
    # runs from two hosts were labelled as the last one's (their figures differ: docs/models.md). Runs
    # from before runs said so keep the host the study named then.
    earlier_host = study.get("host")
    host, date = host_line(), time.strftime("%Y-%m-%d")
    study.update(host=host, date=date)
    for seed in args.seeds:
        if any(r["seed"] == seed for r in study["runs"]):
            continue
        c = copy.deepcopy(cfg)
        c["evolution"]["seed"] = seed
        record = evaluate_candidate(genome, c, data, args.out / f"seed_{seed}")
        if record["status"] != "ok":
            raise SystemExit(f"seed {seed}: {record['status']}: {record.get('reason')}")
        test = test_scores(Path(record["bundle"]), args.out / "data" / "split.json",
                           args.out / f"seed_{seed}" / args.part, args.device, args.part)
        dev = record["device_metrics"]
        run = {"seed": seed, "bundle": record["bundle"], "parameters": record["parameters"],
               "estimated_latency_ms": dev["estimated_latency_ms"], "seconds": round(record["seconds"]),
               "postprocessing": (record["training"].get("postprocessing") or {}).get("chosen"),
               "val_pooled": dev.get("pooled"), "test": test, "host": host, "date": date}
        if args.discriminate:
            seed_dir = args.out / f"seed_{seed}"
            run["discriminator"] = discriminate(Path(record["bundle"]), args.out / "data" / "split.json",
                                                seed_dir / "discriminated", seed_dir / "discriminate_work", kind=kind,
                                                cut_by=cut_by)
            run["test_discriminated"] = test_scores(seed_dir / "discriminated", args.out / "data" / "split.json",
                                                    seed_dir / f"{args.part}_discriminated", args.device, args.part)
        study["runs"].append(run)
        save_study(path, study)
        print(json.dumps({"seed": seed, **{k: test[k] for k in KEYS}, "by_set": test["by_set"],
                          "discriminated": run.get("test_discriminated")}), flush=True)
    study.update(spreads(study["runs"]))
    study["hosts"] = sorted({r.get("host") or earlier_host or "unknown" for r in study["runs"]})
    if len(study["hosts"]) > 1:
        print(f"warning: the runs of {path} come from {len(study['hosts'])} hosts ({'; '.join(study['hosts'])}): "
              "their mean and sd mix hosts", file=sys.stderr)
    save_study(path, study)
    print(json.dumps({"genome": study["name"], **{k: v for k, v in study.items()
                                                  if k.endswith(("_mean_sd", "_seeds"))}}))
    return 0


def save_study(path: Path, study: dict[str, Any]) -> None:
    """Write ``study`` to ``path`` (OUT/study.json) atomically: a resume reads it back, and a write cut
    short (disk full, a kill) truncated it in place, so the next run stopped on a half JSON and every
    finished seed's record (hours of training each) was lost with it."""
    write_atomic(path, json.dumps(study, indent=1).encode())


def spreads(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``test_mean_sd`` (and ``test_discriminated_mean_sd``): per score ``[mean, sd]`` over the runs,
    the sample standard deviation (ddof 1), None for a single run, whose spread is unknown (it was
    0.0, which reads as seeds that agree); ``test_seeds`` (``test_discriminated_seeds``) the seeds
    they are over, so that the number of runs is stated beside them."""
    out: dict[str, Any] = {}
    for key in ("test", "test_discriminated"):
        scored = [r for r in runs if key in r]
        if scored:
            out[f"{key}_mean_sd"] = {k: [float(np.mean([r[key][k] for r in scored])),
                                         float(np.std([r[key][k] for r in scored], ddof=1)) if len(scored) > 1
                                         else None] for k in KEYS}
            out[f"{key}_seeds"] = [r["seed"] for r in scored]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
