"""The paper's comparison as a measurement: FP32 / post-training FP16 / deployment-aligned, over
training seeds and split seeds, on the held-out test split, under several device hypotheses.

    .venv/bin/python scripts/ablation_study.py --config configs/ablation-study.toml --out out/ablation-study
    .venv/bin/python scripts/ablation_study.py --out out/ablation-study --summary-only   # the table again

For each network (``native``: bilinear upsampling with align_corners, a mode the VPU runs as
written; ``remapped``: half_pixel bilinear, which the Myriad X remaps under fp16-myriadx and not
under myriadx-native-interp), each split seed and each training seed: :func:`search.ablate.train_branches`
(shared FP32 training, then a post-training and an aligned branch with the same budget, aligned to
``[candidate] profile``), then on the test split of that split seed (never trained on nor used to
select): the post-training network's torch FP32 forward, and each branch's FP16 IR on the twin
under every ``--profiles`` entry. Pixel scores at the exported threshold, pooled over the test
split and as a per-sample mean. Resumable: each finished run is a line of OUT/runs.jsonl.

The summary (OUT/summary.json, printed as Markdown): per network and profile, mean +- sd over runs
and a 95% bootstrap interval (resampling runs) of FP32, post-training, aligned and the fraction of
the gap recovered, ``(aligned - post) / (fp32 - post)``, counted only where the gap is at least
``NOISE_GAP``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hil.score import summed_counts
from runtime.atomic import write_atomic
from runtime.emulate import compile_twin
from runtime.host import host_line
from search.ablate import NOISE_GAP, train_branches
from search.config import load_config
from search.dataset import prepare_data
from search.data import SceneArrays
from search.evaluate import Confusion, ir_predictor, predict_scene, torch_predictor
from search.export_ir import export_ir
from search.space import Genome

NETWORKS = {"native": "bilinear_corners", "remapped": "bilinear"}
METRICS = ("miou", "vessel_iou")
#: ``--profiles`` of a new study.
PROFILES = ("fp16-myriadx", "myriadx-native-interp", "fp16-ieee")


def study_profiles(rows: list[dict[str, Any]], asked: list[str] | None) -> list[str]:
    """The profiles to score and summarise: ``asked`` (``--profiles``), else those every finished run
    was scored under, else :data:`PROFILES`. A run is scored once, under the profiles of its own
    invocation, so a profile some finished run lacks cannot be summarised (it was a KeyError after
    the study's training, or at once with ``--summary-only`` of a study not run with the defaults).

    Raises:
        ValueError: naming the profiles and the runs that lack them, and the profiles they share.
    """
    shared = [p for p in rows[0]["post_training"] if all(p in r["post_training"] for r in rows)] if rows else []
    profiles = list(asked or shared or PROFILES)
    missing = {r["key"]: [p for p in profiles if p not in r["post_training"]] for r in rows}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        lacking = sorted({p for v in missing.values() for p in v})
        raise ValueError(f"--profiles {profiles}: finished runs were not scored under {lacking} "
                         f"({len(missing)} of {len(rows)} runs, e.g. {next(iter(missing))}); profiles every run has: "
                         f"{shared}; use those, or another --out for a study under the others")
    return profiles


def test_split(data_root: Path) -> list[tuple[str, SceneArrays]]:
    """The test samples of a prepared real data set (split.json), as (name, arrays)."""
    from flightsim.sources import open_source

    split = json.loads((data_root / "split.json").read_text())
    spec = split["source"] if isinstance(split["source"], str) else tuple(split["source"])
    source = open_source(spec)
    out = []
    for i in split["test"]:
        sample = source[i].load()
        out.append((split["names"][str(i)], SceneArrays(i, np.asarray(sample.image), sample.mask.astype(np.uint8))))
    return out


def scores(predict: Any, test: list[tuple[str, SceneArrays]], norm: Any, tile: int, threshold: float) -> dict[str, Any]:
    """Pooled and per-sample-mean pixel scores, overall and per data set (the name's first part)."""
    per: list[tuple[str, Confusion]] = []
    for name, s in test:
        c = Confusion()
        c.add(predict_scene(predict, s.image, norm, tile) >= threshold, s.mask)
        per.append((name.split("/")[0], c))

    def pooled(confs: list[Confusion]) -> dict[str, float]:
        # every pixel of the samples together (Confusion holds the rig's counts: hil.score.COUNTS)
        total = Confusion(summed_counts([c.counts for c in confs]))
        return {"miou": total.miou, "vessel_iou": total.vessel_iou,
                "miou_mean": float(np.mean([c.miou for c in confs])),
                "vessel_iou_mean": float(np.mean([c.vessel_iou for c in confs]))}

    out = pooled([c for _, c in per])
    out["by_set"] = {k: pooled([c for n, c in per if n == k]) for k in sorted({n for n, _ in per})}
    return out


def twin_predictor(xml: bytes, bin_: bytes, profile: str) -> Any:
    return ir_predictor(compile_twin((xml, bin_), profile)[0])


def one_run(cfg: dict[str, Any], genome: Genome, data: Any, test: list[tuple[str, SceneArrays]], seed: int,
            profiles: list[str]) -> dict[str, Any]:
    tile, threshold = int(cfg["export"]["tile"]), float(cfg["export"]["threshold"])
    t0 = time.perf_counter()
    branches, log = train_branches(cfg, genome, data, seed)
    row: dict[str, Any] = {"fp32": scores(torch_predictor(branches["post_training"]), test, data.norm, tile, threshold),
                           "training_s": round(time.perf_counter() - t0, 1)}
    for branch, net in branches.items():
        xml, bin_, _ = export_ir(net.eval(), (1, genome.in_channels, tile, tile), cfg["candidate"]["check_target"])
        row[branch] = {p: scores(twin_predictor(xml, bin_, p), test, data.norm, tile, threshold) for p in profiles}
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _bootstrap(values: np.ndarray, rng: np.random.Generator, n: int = 10_000) -> list[float] | None:
    """95% percentile interval of the mean of ``values`` over ``n`` resamples of them; None under two
    values, whose spread is unknown (as their sd is): [x, x] for one run read as certainty."""
    if len(values) < 2:
        return None
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(rows: list[dict[str, Any]], profiles: list[str]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for net in NETWORKS:
        mine = [r for r in rows if r["network"] == net]
        for profile in profiles:
            for metric in (*METRICS, "miou_mean"):
                fp32 = np.array([r["fp32"][metric] for r in mine])
                post = np.array([r["post_training"][profile][metric] for r in mine])
                aligned = np.array([r["aligned"][profile][metric] for r in mine])
                gap = fp32 - post
                keep = np.abs(gap) >= NOISE_GAP
                recovered = (aligned - post)[keep] / gap[keep]
                cell = {}
                for name, v in (("fp32", fp32), ("post_training", post), ("aligned", aligned),
                                ("aligned_minus_post", aligned - post), ("recovered", recovered)):
                    cell[name] = {"mean": float(v.mean()) if len(v) else None, "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                                  "ci95": _bootstrap(v, rng), "n": int(len(v))}
                out[f"{net}/{profile}/{metric}"] = cell
    return out


def markdown(summary: dict[str, Any]) -> str:
    def f(c: dict[str, Any]) -> str:
        if c["mean"] is None:
            return "n/a (gap below noise in every run)"
        sd = f" ± {c['sd']:.4f}" if c["sd"] is not None else ""
        ci = f" [{c['ci95'][0]:.4f}, {c['ci95'][1]:.4f}]" if c["ci95"] is not None else ""
        return f"{c['mean']:.4f}{sd}{ci} (n={c['n']})"
    lines = ["| network | profile | metric | FP32 (torch) | post-training FP16 | aligned | aligned - post | fraction recovered |",
             "|---|---|---|---|---|---|---|---|"]
    for key, c in summary.items():
        net, profile, metric = key.split("/")
        if c["fp32"]["n"] == 0:
            continue  # a network with no finished run
        lines.append(f"| {net} | {profile} | {metric} | {f(c['fp32'])} | {f(c['post_training'])} | {f(c['aligned'])} | "
                     f"{f(c['aligned_minus_post'])} | {f(c['recovered'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/ablation-study.toml"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--profiles", nargs="+", default=None,
                        help=f"twin profiles each branch is scored under (default: those of the finished runs in "
                             f"--out, else {' '.join(PROFILES)})")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs_path = args.out / "runs.jsonl"
    rows = [json.loads(line) for line in runs_path.read_text().splitlines()] if runs_path.exists() else []
    try:  # before any training: a profile the finished runs lack cannot be summarised with them
        args.profiles = study_profiles(rows, args.profiles)
    except ValueError as exc:
        parser.error(str(exc))
    if not args.summary_only:
        base = load_config(args.config)
        for net in args.networks:
            genome = Genome.from_dict({**base["ablate"], "upsample": NETWORKS[net]})
            for split_seed in args.split_seeds:
                cfg = copy.deepcopy(base)
                cfg["data"]["split_seed"] = split_seed
                data = test = None
                for seed in args.seeds:
                    key = f"{net}/split{split_seed}/seed{seed}"
                    if any(r["key"] == key for r in rows):
                        continue
                    if data is None:
                        data = prepare_data(cfg, args.out / f"data-split{split_seed}")
                        test = test_split(args.out / f"data-split{split_seed}")
                    row = {"key": key, "network": net, "genome": genome.to_dict(), "split_seed": split_seed,
                           "seed": seed, **one_run(cfg, genome, data, test, seed, args.profiles)}
                    rows.append(row)
                    # the whole file again, atomically: an append cut short (disk full, a kill) left a
                    # torn last line, on which the next run's json.loads stopped (and the next append
                    # glued a run to it)
                    write_atomic(runs_path, "".join(json.dumps(r) + "\n" for r in rows).encode())
                    print(f"{key}: fp32 {row['fp32']['miou']:.4f}, post {row['post_training'][args.profiles[0]]['miou']:.4f}, "
                          f"aligned {row['aligned'][args.profiles[0]]['miou']:.4f} ({row['seconds']:.0f} s)", flush=True)
    summary = summarise(rows, args.profiles)
    write_atomic(args.out / "summary.json", json.dumps({"summary": summary, "runs": len(rows), "host": host_line(),
                                                        "date": time.strftime("%Y-%m-%d")}, indent=1).encode())
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
