"""How sure a difference in pooled object F1 between two hil reports on the same samples is: a
paired bootstrap over the samples (each resample draws samples with replacement and pools both
reports' counts over the same draw).

    .venv/bin/python scripts/paired_bootstrap.py out/sar4-val/report.json out/sar4-val-disc/report.json

Prints both F1s, their difference, its 90% interval and the share of resamples where the second
report is no better.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def counts(report: Path) -> dict[str, tuple[int, int, int]]:
    """(true positives, detections, true vessels) of each sample of a hil report, by sample name."""
    return {s["name"]: (s.get("true_positives", 0), s.get("n_predicted", 0), s.get("n_truth", 0))
            for s in json.loads(report.read_text())["per_scene"]}


def pooled_f1(x: np.ndarray) -> np.ndarray:
    """Pooled F1 of (..., samples, 3) counts: 2 TP / (detections + vessels), and 1 where there are
    neither (hil.score.precision_recall_f1: nothing there and nothing found is perfect), so that the
    figure is the report's own."""
    both = x[..., 1].sum(-1) + x[..., 2].sum(-1)
    return np.where(both > 0, 2 * x[..., 0].sum(-1) / np.maximum(both, 1), 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first", type=Path, help="report.json of hil run (the reference)")
    parser.add_argument("second", type=Path, help="report.json of hil run on the same samples")
    parser.add_argument("--resamples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    a, b = counts(args.first), counts(args.second)
    if a.keys() != b.keys():
        print(f"the reports cover different samples ({len(a)} and {len(b)})", file=sys.stderr)
        return 2
    names = sorted(a)
    xa, xb = (np.array([c[n] for n in names], float) for c in (a, b))
    draws = np.random.default_rng(args.seed).integers(0, len(names), (args.resamples, len(names)))
    diff = pooled_f1(xb[draws]) - pooled_f1(xa[draws])
    low, high = np.percentile(diff, [5, 95])
    print(f"F1 {pooled_f1(xa):.3f} -> {pooled_f1(xb):.3f}, difference {pooled_f1(xb) - pooled_f1(xa):.3f}, "
          f"bootstrap 90% interval [{low:.3f}, {high:.3f}], P(difference <= 0) {(diff <= 0).mean():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
