"""Measure training and post-processing choices for a real data set on its validation split.

Each variant is a set of config overrides applied over ``--config``; each is trained for every
``--seeds`` (FP32 only: the choices are about data, not numerics) with one fixed genome (the
``[ablate]`` genome unless ``--genome``), then scored on the validation samples in process
(torch FP32 forward, whole samples tiled as the payload tiles them): pooled object precision,
recall and F1 at IoU >= 0.5, and pooled vessel IoU, at threshold 0.5 and minimum size 4 px unless
the variant chooses them. The test split is never touched.

    .venv/bin/python scripts/training_choices.py --config configs/sar.toml --seeds 0 1 \\
        --out out/choices-sar

Writes OUT/choices.json and prints a markdown table (mean and spread over the seeds).
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

from runtime.atomic import write_atomic  # noqa: E402
from runtime.host import host_line  # noqa: E402
from search.ablate import parse_genome  # noqa: E402
from search.config import load_config  # noqa: E402
from search.candidate import choose_on_validation  # noqa: E402
from search.dataset import make_sampler, normalised, prepare_data, split_arrays  # noqa: E402
from search.evaluate import confusion_of, object_scores, predict_scenes, torch_predictor  # noqa: E402
from search.network import GenomeNet  # noqa: E402
from search.train import fit, seed_everything, torch_device  # noqa: E402

#: Score cuts (output.min_score) from 0 to 0.99, finer than configs/sar.toml's.
FINE_CUTS = [0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]

#: name -> overrides ({table: {key: value}}) over the config; "base" is the config as it is.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "base (flip, rot90)": {"train": {"augment": ["flip", "rot90"], "hard_negative_fraction": 0.0}},
    "+ gain, contrast, speckle": {"train": {"augment": ["flip", "rot90", "gain", "contrast", "speckle"],
                                            "hard_negative_fraction": 0.0}},
    "+ scale jitter": {"train": {"augment": ["flip", "rot90", "scale"], "hard_negative_fraction": 0.0}},
    "+ hard negatives 0.2": {"train": {"augment": ["flip", "rot90"], "hard_negative_fraction": 0.2}},
    "vessel patches 0.3 (not 0.6)": {"train": {"augment": ["flip", "rot90"], "hard_negative_fraction": 0.0,
                                               "vessel_fraction": 0.3}},
    "vessel 0.3 + hard negatives 0.3": {"train": {"augment": ["flip", "rot90"], "hard_negative_fraction": 0.3,
                                                  "vessel_fraction": 0.3}},
    # The training budget and the context each patch gives (over configs/sar.toml as it is).
    "as the config (6 epochs)": {},
    "5x the steps (30 epochs)": {"candidate": {"fp32_epochs": 30}},
    "30 epochs, patch 192": {"candidate": {"fp32_epochs": 30}, "train": {"patch": 192}},
    "hard negatives 0.4 (not 0.2)": {"train": {"hard_negative_fraction": 0.4}},
    # SSDD's 742 training chips against HRSID's 22 tiles: HRSID (0.5-3 m, 800 px) given 40% of the patches.
    "source weights 0.6 / 0.2 / 0.2 (SSDD, hrsid-mini, hrsid-official)": {"data": {"source_weights": [0.6, 0.2, 0.2]}},
    "log-amplitude normalisation (log(1 + counts), then mean and std)": {"data": {"normalization_scale": "log"}},
    # A training-only land head on the decoder's features, taught by SSDD's sea/land masks
    # ([data] land_masks of the config; HRSID has none and is left out of that loss).
    "land head, weight 0.5": {"train": {"land_weight": 0.5}},
    "land head, weight 1.0": {"train": {"land_weight": 1.0}},
    # The same head flown: the output is the vessel probability times the network's sea probability.
    "land head, weight 1.0, gating the output on board": {"train": {"land_weight": 1.0, "land_gate": "local"}},
    # The gate lowers every probability a little, so the score cut needs lower steps to choose from.
    "land head, weight 1.0, finer score cuts": {"train": {"land_weight": 1.0}, "export": {"min_scores": FINE_CUTS}},
    "land gate, finer score cuts": {"train": {"land_weight": 1.0, "land_gate": "local"},
                                    "export": {"min_scores": FINE_CUTS}},
    "land gate with 16 px cell context, finer score cuts": {"train": {"land_weight": 1.0, "land_gate": "context"},
                                                            "export": {"min_scores": FINE_CUTS}},
    # At the final training's budget: the cell-context gate the final training flies, and the wide
    # gate whose cell term sees 5 x 5 cells (search.network.GenomeNet).
    "30 epochs, land gate with 16 px cell context": {"candidate": {"fp32_epochs": 30},
                                                     "train": {"land_weight": 1.0, "land_gate": "context"},
                                                     "export": {"min_scores": FINE_CUTS}},
    "30 epochs, wide land gate (3x3 convs over 16 px cells)": {"candidate": {"fp32_epochs": 30},
                                                               "train": {"land_weight": 1.0, "land_gate": "wide"},
                                                               "export": {"min_scores": FINE_CUTS}},
    # The same gate taught by the vessel loss on the flown output (vessel x sea) as well as by the
    # land masks: it learns which land makes false vessels ([train] gate_loss).
    "30 epochs, wide land gate, vessel loss on the flown output": {
        "candidate": {"fp32_epochs": 30}, "train": {"land_weight": 1.0, "land_gate": "wide", "gate_loss": "flown"},
        "export": {"min_scores": FINE_CUTS}},
    # The wide gate with the input's mean and mean square per 16 px cell beside the features'.
    "30 epochs, wide land gate with the input's texture per cell": {
        "candidate": {"fp32_epochs": 30}, "train": {"land_weight": 1.0, "land_gate": "wide_texture"},
        "export": {"min_scores": FINE_CUTS}},
    # The same at two and three times the final training's steps: the shipped network's mask has the
    # same vessel IoU on its training chips as on validation (0.433 and 0.428), so it underfits.
    **{f"{n} epochs, wide land gate": {"candidate": {"fp32_epochs": n}, "train": {"land_weight": 1.0, "land_gate": "wide"},
                                       "export": {"min_scores": FINE_CUTS}} for n in (60, 90)},
    # The wide gate's land loss weighted towards the pixels the vessel head fires on ([train] land_focus).
    "30 epochs, wide land gate, land loss focused where the vessel head fires (land_focus 4)": {
        "candidate": {"fp32_epochs": 30}, "train": {"land_weight": 1.0, "land_gate": "wide", "land_focus": 4.0},
        "export": {"min_scores": FINE_CUTS}},
    # The wide gate with twice the hard-negative patches (the brightest non-vessel pixels: mostly land).
    "30 epochs, wide land gate, hard negatives 0.4": {
        "candidate": {"fp32_epochs": 30}, "train": {"land_weight": 1.0, "land_gate": "wide",
                                                    "hard_negative_fraction": 0.4},
        "export": {"min_scores": FINE_CUTS}},
    # The weight of the soft Dice term beside BCE ([train] dice_weight, 1 by default): Dice summed over
    # the batch is a soft pooled vessel IoU, the pixel figure the target names.
    **{f"30 epochs, wide land gate, dice weight {w:g}": {
        "candidate": {"fp32_epochs": 30}, "train": {"land_weight": 1.0, "land_gate": "wide", "dice_weight": w},
        "export": {"min_scores": FINE_CUTS}} for w in (0.3, 3.0)},
}


def _merged(cfg: dict[str, Any], overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    for table, values in overrides.items():
        out[table].update(values)
    return out


def run_variant(cfg: dict[str, Any], genome: Any, data: Any, seed: int) -> dict[str, Any]:
    """Train ``genome`` under ``cfg`` with ``seed``; validation scores at 0.5 / 4 px and chosen."""
    tr = cfg["train"]
    if data.norm.scale != cfg["data"]["normalization_scale"]:
        data = normalised(data, cfg)
    rng = seed_everything(seed, tr["threads"])
    net = GenomeNet(genome, land_gate=tr["land_gate"])
    t0 = time.perf_counter()
    fit(net, make_sampler(cfg, data, rng), cfg, int(cfg["candidate"]["fp32_epochs"]), tr["lr"],
        torch_device(cfg["candidate"]["torch_device"]))
    train_s = time.perf_counter() - t0
    scenes = split_arrays(data, "val")
    probs = predict_scenes(torch_predictor(net), scenes, data.norm, int(cfg["export"]["tile"]))
    fixed = object_scores(probs, scenes, [0.5], [4])[0]
    conf = confusion_of(probs, scenes, 0.5)
    chosen = choose_on_validation(probs, {**cfg, "export": {**cfg["export"], "choose_postprocessing": True}}, data)
    best = chosen["chosen"] if chosen else fixed
    conf_best = confusion_of(probs, scenes, best["threshold"])
    return {"seed": seed, "train_s": round(train_s, 1), "f1": fixed["f1"], "precision": fixed["precision"],
            "recall": fixed["recall"], "vessel_iou": round(conf.vessel_iou, 4),
            "chosen": best, "f1_chosen": best["f1"], "vessel_iou_chosen": round(conf_best.vessel_iou, 4)}


def _spread(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if len(a) > 1 else f"{a.mean():.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--genome", help="JSON, a JSON file or a bundle manifest (default: [ablate])")
    parser.add_argument("--variants", nargs="*", help=f"subset of {list(VARIANTS)}")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    genome = parse_genome(args.genome, cfg)
    data = prepare_data(cfg, args.out / "data")
    record: dict[str, Any] = {"config": str(args.config), "genome": genome.to_dict(), "seeds": args.seeds,
                              "host": host_line(), "date": time.strftime("%Y-%m-%d"), "variants": {}}
    out_json = args.out / "choices.json"
    if out_json.exists():
        earlier = json.loads(out_json.read_text())
        if (earlier.get("genome") != record["genome"]
                or Path(str(earlier.get("config"))).resolve() != Path(str(record["config"])).resolve()):
            raise SystemExit(f"{out_json} measured {earlier.get('genome')} under {earlier.get('config')}, not "
                             f"{genome} under {args.config}: use another --out")
        record["variants"] = earlier.get("variants", {})
    for name in args.variants or list(VARIANTS):
        runs = record["variants"].setdefault(name, [])
        for seed in args.seeds:
            if any(r["seed"] == seed for r in runs):
                continue  # resumable: a variant and seed already measured is kept
            runs.append(run_variant(_merged(cfg, VARIANTS[name]), genome, data, seed))
            # atomically: the next run resumes from it, and one cut short in place was a half JSON there
            write_atomic(out_json, json.dumps(record, indent=1).encode())
            print(name, runs[-1], flush=True)
    print("\n| variant | F1 @0.5/4px | vessel IoU @0.5 | F1, threshold and size chosen on val | seeds |")
    print("|---|---|---|---|---|")
    for name, runs in record["variants"].items():
        print(f"| {name} | {_spread([r['f1'] for r in runs])} | {_spread([r['vessel_iou'] for r in runs])} | "
              f"{_spread([r['f1_chosen'] for r in runs])} | {len(runs)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
