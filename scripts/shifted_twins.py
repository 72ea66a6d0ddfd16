"""Test samples of a split whose image is a shifted or cropped copy of a training or validation sample.

search/dataset.py keeps exact twins (same pixels) and near twins (the same image re-cut a few rows or
columns larger or smaller, compared anchored at each of the four corners) in one part of the split.
A copy that is shifted, or a crop out of the middle of another chip (SSDD holds overlapping crops of
one scene, often stretched, quantised or re-compressed otherwise), escapes both. This measures how
many test samples of a ``split.json`` have such a twin in train or val:

    PYTHONWARNINGS=ignore PYTHONPATH=$PWD .venv/bin/python scripts/shifted_twins.py \
        --split out/sar8/data/split.json --out out/sar8/shifted_twins.json

Two stages, so that SSDD's ~950 samples take two to three minutes on two cores:

1. coarse, every (test, train-or-val) pair: ``--coarse``-fold block means, each contrast-normalised
   locally (zero mean, unit spread in a small window), correlated at every offset where the two
   overlap by at least ``--min-overlap`` of the smaller image, by one FFT per pair; the mean product
   over the overlap ranks the candidates;
2. exact, the ``--top-k`` best candidates of each test sample (and any above ``--coarse-floor``): the
   masked normalised cross-correlation of the pixels (means and spreads of the overlap itself) at
   every offset on 2-fold block means, then on the full pixels within 2 pixels of the best, gives the
   offset, the overlap and ``ncc``; at that offset, ``ncc_texture`` correlates the two images each
   smoothed (1 px) and contrast-normalised in a 15 px window (:func:`texture`), so that every part of
   the overlap weighs alike.

A pair is a twin when ``ncc_texture`` reaches ``--threshold`` (0.1), over at least 10,000 shared pixels
(``search.twins.MIN_PIXELS``; every SSDD pair overlaps by more). The pixel correlation alone does
not separate the groups: a translation lays one bright ship on another, and two distinct chips reach
0.5-0.64, while twins whose copy was stretched or re-compressed otherwise fall to 0.2-0.8. On models/sar's
split (out/sar8; 773 pairs measured at ``--top-k 8``, 3,072 at 32, the default since) the texture
correlation of the pairs that are no twin is 0.016 +- 0.017 at 8 and 0.013 +- 0.015 at 32 (max 0.089
both times; those from 0.05 up inspected at 8: all distinct scenes), and every pair from 0.13 up
(295 pairs at 8, 360 at 32), inspected down to 0.5 at 8, shows the same ships, wakes and coast at the same pixel scale; 0.1 lies in
that gap, five spreads above the distinct pairs' mean. The script prints the histogram, those statistics
and the count at other thresholds (and at thresholds of the pixel correlation, for comparison).

The detection itself is search/twins.py (what search/dataset.py drops train/val samples by, with
``[data] shifted_twins``); this script reads a split's samples, runs it and reports.

Translation and cropping, in each orientation asked for (``--orientations``: by default the samples
as stored; ``all`` searches each test sample flipped and turned by quarter turns as well, eight times
the time): a copy resampled to another pixel size scores as distinct (SSDD's twins measured so far
are all at one scale). A test sample with more twins than
``--top-k`` lists at least ``--top-k`` of them. Writes JSON: the settings, every pair stage 2 measured
(offset, overlap, both correlations, twin or not, whether search/dataset.py's corner-anchored
near-twin rule would catch it), each test sample's best twin, and a summary (how many test samples
have a twin, which, and which have none).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.atomic import write_atomic  # noqa: E402
from search.twins import (COARSE, COARSE_FLOOR, MIN_OVERLAP, ORIENTATIONS, THRESHOLD, TOP_K,  # noqa: E402
                          check_orientations, find_pairs, grey, is_twin, ncc_at, ncc_map, orient, settings,
                          shifted_match)

__all__ = ["THRESHOLD", "by_twin", "corner_twin", "distribution", "find_twins", "grey", "is_twin", "load_split", "main",
           "ncc_at", "ncc_map", "sensitivity", "shifted_match"]


def corner_twin(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether search/dataset.py's near-twin rule would join ``a`` and ``b`` (sides within
    ``_NEAR_SIDE``, same on a window anchored at one of the four corners): the pairs it already keeps
    on one side of a split made today."""
    from search.dataset import _NEAR_SIDE, _same_image

    if not all(abs(p - q) <= _NEAR_SIDE * max(p, q) for p, q in zip(a.shape, b.shape)):
        return False
    return bool(np.array_equal(a, b) or _same_image(a[None], b[None]))


def load_split(split_path: Path, remap: list[tuple[str, str]] | None = None) -> tuple[dict[str, Any], Any]:
    """The split.json and its source (opened by flightsim.sources.open_source); ``remap`` replaces
    path prefixes (OLD, NEW) in the source specs (the data moved)."""
    from flightsim.sources import open_source

    split = json.loads(split_path.read_text())
    spec = split["source"]
    specs = [spec] if isinstance(spec, str) else list(spec)
    for old, new in remap or []:
        specs = [s.replace(old, new, 1) for s in specs]
    source = open_source(specs[0] if isinstance(spec, str) else specs)
    names = split.get("names", {})
    if names and len(names) != len(source):
        raise ValueError(f"{split_path} names {len(names)} samples; its source has {len(source)}")
    return split, source


def find_twins(split: dict[str, Any], source: Any, *, min_overlap: float = MIN_OVERLAP, threshold: float = THRESHOLD,
               coarse: int = COARSE, top_k: int = TOP_K, coarse_floor: float = COARSE_FLOOR,
               orientations: tuple[str, ...] = ("identity",), log: Any = print) -> dict[str, Any]:
    """Every measured (test, train-or-val) pair and the twins among them (see the module docstring):
    the samples read, :func:`search.twins.find_pairs` run once per orientation of the test samples
    (``orientations``, names of :data:`search.twins.ORIENTATIONS`: a copy stored flipped or rotated
    is found in its orientation; each pair records it, its offset in the oriented test image's
    pixels), its pairs named and summarised."""
    orientations = check_orientations(orientations)  # an unknown name fails before the samples are read
    t0 = time.time()
    test = [int(i) for i in split["test"]]
    others = [(int(i), part) for part in ("train", "val") for i in split[part]]
    wanted = sorted(set(test) | {i for i, _ in others})
    images: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    for i in wanted:
        sample = source[i]
        pixels = sample.read()
        expected = split.get("names", {}).get(str(i))
        if expected is not None and sample.name != expected:
            raise ValueError(f"sample {i} is {sample.name!r}; the split names it {expected!r}")
        names[i] = sample.name
        images[i] = grey(pixels)
    log(f"read {len(images)} samples in {time.time() - t0:.1f} s")
    part_of = dict(others)
    pairs: list[dict[str, Any]] = []
    for name in orientations:
        oriented = {**images, **{i: orient(images[i], name) for i in test}}
        if len(orientations) > 1:
            log(f"orientation {name}:")
        measured = find_pairs(oriented, test, [j for j, _ in others], min_overlap=min_overlap, threshold=threshold,
                              coarse=coarse, top_k=top_k, coarse_floor=coarse_floor, log=log)
        for m in measured:
            i, j = m["test"], m["other"]
            match = {k: m[k] for k in ("dy", "dx", "overlap", "ncc", "ncc_coarse", "ncc_texture")}
            pairs.append({"test": names[i], "test_id": i, "other": names[j], "other_id": j,
                          "other_split": part_of[j], "orientation": name,
                          "test_shape": list(oriented[i].shape), "other_shape": list(images[j].shape),
                          **match, "coarse_score": m["coarse_score"], "coarse_rank": m["coarse_rank"],
                          "twin": m["twin"],
                          # the near-twin rule compares samples as stored: a flipped copy escapes it
                          "caught_by_corner_rule": name == "identity" and m["twin"]
                          and corner_twin(images[i], images[j])})
    pairs.sort(key=lambda p: -p["ncc_texture"])
    twins = [p for p in pairs if p["twin"]]
    per_test: dict[str, Any] = {}
    for p in twins:  # best first
        entry = per_test.setdefault(p["test"], {"twins": 0, "best": {k: p[k] for k in (
            "other", "other_split", "orientation", "dy", "dx", "overlap", "ncc", "ncc_texture")}, "others": []})
        entry["twins"] += 1
        entry["others"].append(p["other"])
    new = sorted(n for n, e in per_test.items() if not any(
        p["caught_by_corner_rule"] for p in twins if p["test"] == n))
    return {"settings": {**settings(min_overlap, threshold, coarse, top_k, coarse_floor),
                         "orientations": list(orientations)},
            "summary": {"test_samples": len(test), "train_val_samples": len(others), "pairs_measured": len(pairs),
                        "twin_pairs": len(twins), "test_with_twin": len(per_test),
                        "test_names_with_twin": sorted(per_test),
                        "test_names_without_twin": sorted({names[i] for i in test} - set(per_test)),
                        "test_with_twin_missed_by_corner_rule": len(new), "test_names_missed_by_corner_rule": new,
                        "test_with_twin_at": sensitivity(pairs),
                        "seconds": round(time.time() - t0, 1)},
            "distribution": distribution([p["ncc_texture"] for p in pairs], threshold),
            "per_test": dict(sorted(per_test.items())),
            "pairs": pairs}


def sensitivity(pairs: list[dict[str, Any]]) -> dict[str, int]:
    """How many test samples would have a twin at other thresholds: of the texture correlation (the
    twin test), and of the plain correlation of the pixels (``ncc``), for comparison."""
    out = {}
    for key, levels in (("ncc_texture", (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8)), ("ncc", (0.7, 0.8, 0.9, 0.95, 0.99))):
        for level in levels:
            out[f"{key}>={level}"] = len({p["test"] for p in pairs if p[key] >= level})
    return out


#: :func:`distribution`'s histogram edges: fine where the distinct pairs lie, coarse above.
_EDGES = (-1.0, -0.05, 0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


def distribution(values: list[float], threshold: float) -> dict[str, Any]:
    """The measured texture correlations: a histogram; the mean, spread and largest of those below
    ``threshold`` (the distinct pairs: the best candidates of each test sample that are no twin), the
    least above it; and the largest gap between two sorted values below 0.5 (where the two groups part)."""
    v = np.sort(np.asarray(values, float))
    hist, _ = np.histogram(v, _EDGES)
    below, above = v[v < threshold], v[v >= threshold]
    low = v[v < 0.5]
    gap = None
    if len(low) > 1:
        k = int(np.argmax(np.diff(low)))
        gap = [round(float(low[k]), 4), round(float(low[k + 1]), 4)]
    return {"histogram": {f"{lo:.2f}..{min(hi, 1.0):.2f}": int(c) for lo, hi, c in zip(_EDGES[:-1], _EDGES[1:], hist)},
            "below_threshold": {"n": int(len(below)), "mean": round(float(below.mean()), 4) if len(below) else None,
                                "sd": round(float(below.std()), 4) if len(below) else None,
                                "max": round(float(below.max()), 4) if len(below) else None},
            "at_or_above_threshold": {"n": int(len(above)),
                                      "min": round(float(above.min()), 4) if len(above) else None},
            "largest_gap_below_0.5": gap}


def by_twin(report: dict[str, Any], found: dict[str, Any], prefix: str = "coco/", draws: int = 5000,
            seed: int = 0) -> dict[str, Any]:
    """A ``hil run`` report's test samples named ``prefix...`` pooled in two groups, those with a twin
    in training (by ``found``, a result of :func:`find_twins`) and those without: object P/R/F1, the
    vessel IoU of the network's mask and of the reported outlines (hil.score.pooled_scores over each
    sample's counts), and a 95% bootstrap interval over samples (``draws`` resamplings) for F1 and
    the outlines' IoU. What tells how much a leak inflates a split's figures."""
    from hil.score import pooled_scores

    trained = {p["test"] for p in found["pairs"] if p["twin"] and p["other_split"] == "train"}
    rows = [r for r in report["per_scene"] if r["name"].startswith(prefix)]
    rng = np.random.default_rng(seed)

    def pooled(group: list[dict[str, Any]]) -> dict[str, float]:
        mask = pooled_scores([r["pixel_counts"] for r in group], group)
        outline = pooled_scores([r["outline_pixel_counts"] for r in group], group)
        return {"samples": len(group), "ships": mask["n_truth"], "precision": mask["precision"],
                "recall": mask["recall"], "f1": mask["f1"], "vessel_iou_mask": mask["vessel_iou"],
                "vessel_iou_outlines": outline["vessel_iou"]}

    out: dict[str, Any] = {"all": pooled(rows)}
    for name, group in (("twin_in_training", [r for r in rows if r["name"] in trained]),
                        ("no_twin_in_training", [r for r in rows if r["name"] not in trained])):
        if not group:
            continue
        boot = [pooled([group[k] for k in rng.integers(0, len(group), len(group))]) for _ in range(draws)]
        out[name] = {**pooled(group), **{f"{key}_95": [round(float(q), 3) for q in np.percentile(
            [b[key] for b in boot], (2.5, 97.5))] for key in ("f1", "vessel_iou_outlines")}}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", required=True, type=Path, help="a search's data/split.json")
    ap.add_argument("--out", type=Path, help="JSON to write (every measured pair and the summary)")
    ap.add_argument("--remap", nargs=2, action="append", metavar=("OLD", "NEW"), default=[],
                    help="replace a path prefix of the split's source specs (data moved)")
    ap.add_argument("--min-overlap", type=float, default=MIN_OVERLAP)
    ap.add_argument("--threshold", type=float, default=THRESHOLD)
    ap.add_argument("--coarse", type=int, default=COARSE)
    ap.add_argument("--top-k", type=int, default=TOP_K)
    ap.add_argument("--coarse-floor", type=float, default=COARSE_FLOOR)
    ap.add_argument("--orientations", nargs="+", default=["identity"], metavar="NAME",
                    help=f"search each test sample in these orientations (default: as stored; 'all': every one; "
                         f"choices: {', '.join(ORIENTATIONS)}); a copy stored flipped or rotated is found in its own")
    ap.add_argument("--report", type=Path, help="with --twins: a hil run's report.json of that split's test "
                    "part, its SSDD chips scored apart by twin in training or not (no search is run)")
    ap.add_argument("--twins", type=Path, help="a JSON this script wrote (--out) for the report's split")
    args = ap.parse_args(argv)
    if args.report or args.twins:
        if not (args.report and args.twins):
            ap.error("--report and --twins go together")
        scores = by_twin(json.loads(args.report.read_text()), json.loads(args.twins.read_text()))
        print(json.dumps(scores, indent=1))
        return 0
    try:
        orientations = check_orientations(list(ORIENTATIONS) if args.orientations == ["all"] else args.orientations)
    except ValueError as exc:
        ap.error(f"--orientations ('all' or names): {exc}")
    split, source = load_split(args.split, [tuple(r) for r in args.remap])
    result = find_twins(split, source, min_overlap=args.min_overlap, threshold=args.threshold, coarse=args.coarse,
                        top_k=args.top_k, coarse_floor=args.coarse_floor, orientations=orientations)
    result = {"split": str(args.split), **result}
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=1).encode())  # a cut run leaves no half file
    s, d = result["summary"], result["distribution"]
    print("texture correlation over the overlap, every measured pair (each test sample's best candidates):")
    for k, c in d["histogram"].items():
        if c:
            print(f"  {k:>11}: {c:5d} {'#' * min(60, c)}")
    b, a = d["below_threshold"], d["at_or_above_threshold"]
    print(f"below threshold {args.threshold}: {b['n']} pairs, mean {b['mean']}, sd {b['sd']}, max {b['max']}; "
          f"at or above: {a['n']} pairs, min {a['min']}; largest gap below 0.5: {d['largest_gap_below_0.5']}")
    print("test samples with a twin at other thresholds:", s["test_with_twin_at"])
    print("each test sample with a twin, its best (dy, dx = the other's origin in the test chip's pixels):")
    for name, e in result["per_test"].items():
        p = e["best"]
        print(f"  {name:<28} {p['other']:<14} {p['other_split']:<5} {p['orientation']:<14} offset ({p['dy']:4d}, {p['dx']:4d}) overlap "
              f"{p['overlap']:.2f} ncc {p['ncc']:.3f} texture {p['ncc_texture']:.3f}  ({e['twins']} twin(s))")
    print(f"{s['test_with_twin']} of {s['test_samples']} test samples have a shifted/cropped twin in train or val "
          f"({s['test_with_twin_missed_by_corner_rule']} of them none that search/dataset.py's corner rule "
          f"catches); {s['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
