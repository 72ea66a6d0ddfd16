"""Leave-one-data-set-out: train a genome without one data set of a source list, score it on that set.

For sets too small to split (the four sen2ships ports are one image each), the honest figure on
real data is the one of a model that never saw the set. Each ``--holdout K`` marks data set K of
``[data] source`` as ``test`` (``[data] source_roles``), trains the genome exactly as the search
trains a candidate (``search.candidate.evaluate_candidate``: FP32 and aligned epochs, threshold and
smallest vessel chosen on the validation split, export, target check, golden tile), then runs the
bundle through ``hil run`` on the held-out set alone on ``--device`` (the twin by default).

    .venv/bin/python scripts/leave_one_out.py --config configs/optical.toml --holdout 2 3 4 5 --rotate-val \\
        --genome models/optical/manifest.json --out out/optical-lopo
    .venv/bin/python scripts/leave_one_out.py --config configs/optical.toml --holdout none \\
        --genome models/optical/manifest.json --out out/optical --ship models/optical \\
        --figures out/optical-lopo/leave_one_out.json

``--holdout none`` trains on every set as configured (the model to ship); with ``--ship DIR`` its
bundle is written there, with the leave-one-out figures of ``--figures`` in its manifest
(``metrics.leave_one_out``: figures of the fold models, which share its genome, recipe and data
but one set; not of the shipped weights). Writes OUT/leave_one_out.json (resumable: a fold done is
kept) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hil  # noqa: E402
from flightsim.sources import open_source  # noqa: E402
from runtime.atomic import write_atomic  # noqa: E402
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle  # noqa: E402
from runtime.host import host_line  # noqa: E402
from search.ablate import parse_genome  # noqa: E402
from search.candidate import evaluate_candidate  # noqa: E402
from search.config import load_config  # noqa: E402
from search.dataset import prepare_data, source_roles  # noqa: E402

KEYS = ("precision", "recall", "f1", "vessel_iou", "miou", "n_truth", "n_predicted", "true_positives")


def fold_config(cfg: dict[str, Any], holdout: int | None, rotation: list[int] | None = None) -> dict[str, Any]:
    """``cfg`` with data set ``holdout`` of the source list held out whole as the test split.

    With ``rotation`` (the sets taking turns, ``--holdout``), the set after ``holdout`` in it
    validates (chooses the threshold and the smallest vessel) and every other set of the rotation
    trains: selection is made on real data the fold's test set is not."""
    out = copy.deepcopy(cfg)
    sources = list(out["data"]["source"]) if isinstance(out["data"]["source"], list) else [out["data"]["source"]]
    roles = source_roles(out["data"], len(sources))
    if holdout is not None:
        if not 0 <= holdout < len(sources):
            raise ValueError(f"--holdout {holdout}: the source list has data sets 0..{len(sources) - 1}")
        if rotation:
            for k in rotation:
                roles[k] = "train"
            roles[rotation[(rotation.index(holdout) + 1) % len(rotation)]] = "val"
        roles[holdout] = "test"
    out["data"]["source_roles"] = roles
    return out


def run_fold(cfg: dict[str, Any], genome: Any, holdout: int | None, out: Path, device: str,
             rotation: list[int] | None = None) -> dict[str, Any]:
    """Train without set ``holdout`` and score the bundle on it (``None``: the sets as configured)."""
    fold = fold_config(cfg, holdout, rotation)
    data = prepare_data(fold, out / "data")
    record = evaluate_candidate(genome, fold, data, out)
    if record["status"] != "ok":
        raise SystemExit(f"holdout {holdout}: {record['status']}: {record.get('reason')}")
    row: dict[str, Any] = {"holdout": holdout, "roles": fold["data"]["source_roles"], "bundle": record["bundle"], "seconds": round(record["seconds"]),
                           "postprocessing": (record["training"].get("postprocessing") or {}).get("chosen"),
                           "val_pooled": record["device_metrics"].get("pooled")}
    if holdout is not None:
        spec = fold["data"]["source"][holdout]
        report = hil.run(open_source(spec), Path(record["bundle"]), out / "heldout", device=device,
                         progress=False).report
        row.update(set=spec, device=report["device"], profile=report.get("profile"),
                   tiles_lost=report["tiles_lost"], **{k: report.get(k) for k in KEYS})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--holdout", nargs="+", required=True,
                        help="indices into [data] source of the sets to hold out one at a time, or 'none'")
    parser.add_argument("--genome", help="JSON, a JSON file or a bundle manifest (default: [ablate])")
    parser.add_argument("--rotate-val", action="store_true",
                        help="the set after each held-out one (in --holdout order) validates, the others train")
    parser.add_argument("--source-weights", type=float, nargs="+",
                        help="override [data] source_weights, one per set (an ablation: 0 keeps a set out of training)")
    parser.add_argument("--device", default="myriadx-emu", help="where the held-out set is scored (default the twin)")
    parser.add_argument("--ship", type=Path, help="with --holdout none: write the bundle here")
    parser.add_argument("--figures", type=Path, help="with --ship: the leave_one_out.json whose folds go into the manifest")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.source_weights:
        cfg["data"]["source_weights"] = list(args.source_weights)
    genome = parse_genome(args.genome, cfg)
    holdouts = [None if h == "none" else int(h) for h in args.holdout]
    path = args.out / "leave_one_out.json"
    study = json.loads(path.read_text()) if path.exists() else {
        "config": str(args.config), "genome": genome.to_dict(), "name": str(genome), "folds": []}
    study.update(host=host_line(), date=time.strftime("%Y-%m-%d"), source_weights=cfg["data"]["source_weights"])
    for holdout in holdouts:
        if any(f["holdout"] == holdout for f in study["folds"]):
            continue  # resumable
        name = "all" if holdout is None else f"holdout_{holdout}"
        rotation = [h for h in holdouts if h is not None] if args.rotate_val else None
        study["folds"].append(run_fold(cfg, genome, holdout, args.out / name, args.device, rotation))
        # atomically: the next run resumes from it, and one cut short in place was a half JSON there
        write_atomic(path, json.dumps(study, indent=1).encode())
        print(json.dumps(study["folds"][-1]), flush=True)
    print("\n| held out | ships | precision | recall | F1 | vessel IoU | threshold, px |")
    print("|---|---|---|---|---|---|---|")
    for f in study["folds"]:
        if f["holdout"] is not None:
            post = f["postprocessing"] or {}
            print(f"| {f['set'].rsplit('/', 1)[-1]} | {f['n_truth']} | {f['precision']:.3f} | {f['recall']:.3f} | "
                  f"{f['f1']:.3f} | {f['vessel_iou']:.3f} | {post.get('threshold')}, {post.get('min_area_px')} |")
    if args.ship:
        ship(study, args.ship, args.figures)
    return 0


def ship(study: dict[str, Any], out: Path, figures: Path | None) -> None:
    """Copy the every-set model's bundle to ``out``, with the leave-one-out figures in its manifest."""
    full = [f for f in study["folds"] if f["holdout"] is None]
    if not full:
        raise SystemExit("--ship needs the --holdout none run")
    folds = json.loads(figures.read_text())["folds"] if figures else []
    bundle = read_bundle(full[0]["bundle"])
    manifest = rewritable_manifest(bundle)
    val = [i for i, r in enumerate(full[0]["roles"]) if r == "val"]
    manifest["metrics"]["validation"] = {
        "what": "these weights through hil on the twin, pooled over the validation set(s), which chose the "
                "threshold and smallest vessel", "sets": val, **(full[0]["val_pooled"] or {}),
        "postprocessing": full[0]["postprocessing"]}
    manifest["metrics"]["leave_one_out"] = {
        "what": "each held-out set scored through hil on the twin by a model of this genome, recipe and data "
                "trained without that set (not by these weights)",
        "folds": [{k: f.get(k) for k in ("set", "device", "profile", *KEYS, "postprocessing")}
                  for f in folds if f["holdout"] is not None],
        "host": study["host"], "date": study["date"]}
    shutil.rmtree(out, ignore_errors=True)
    rewrite_bundle(bundle, out, manifest)
    print(f"shipped {out}")


if __name__ == "__main__":
    raise SystemExit(main())
