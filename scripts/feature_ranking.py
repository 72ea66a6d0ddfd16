"""How well each feature of the runtime's second stage separates ships from the rest on its own:
the area under the ROC curve of every :data:`runtime.candidate_features.FEATURES` over a model's
candidates on one part of a split (the validation part by default; never the test part).

    .venv/bin/python scripts/feature_ranking.py --model models/sar --split out/sar2/data/split.json

The model runs through ``hil run`` with its cuts opened (``search.discriminate.open_cuts``: every
component of 4 px or more is a candidate), each candidate is measured on its tile as the payload
measures it, and is a ship when it matches a true vessel at IoU >= 0.5. An AUC below 0.5 means the
feature is lower for ships; ``separation`` is max(AUC, 1 - AUC).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.candidate_features import FEATURES  # noqa: E402
from search.discriminate import open_cuts, split_candidates  # noqa: E402


def auc(values: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``values`` for the ``positive`` rows (Mann-Whitney, ties averaged)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # average the ranks of ties
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        raise ValueError("an AUC needs candidates of both kinds (ships and not)")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True, help="the search's OUT/data/split.json")
    parser.add_argument("--part", choices=("train", "val"), default="val", help="never test")
    parser.add_argument("--device", default="myriadx-emu")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        open_cuts(args.model, work / "opened")
        found = split_candidates(work / "opened", args.split, args.part, work, args.device)
        rows, labels = found.rows, found.labels
    print(f"{len(labels)} candidates on {args.split}:{args.part}, {int(labels.sum())} of them ships\n")
    print("| feature | AUC | separation |\n|---|---|---|")
    for i, name in enumerate(FEATURES):
        a = auc(rows[:, i], labels)
        print(f"| {name} | {a:.3f} | {max(a, 1 - a):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
