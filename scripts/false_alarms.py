"""Where a model's false alarms are: each detection of a `hil run` over a split, by its best IoU with
a true vessel and by where it lies on the sample's sea/land mask.

    .venv/bin/python -m hil run --split out/sar/data/split.json:val --model models/sar \\
        --device myriadx-emu --out out/sar-val
    .venv/bin/python scripts/false_alarms.py --split out/sar/data/split.json:val \\
        --detections out/sar-val/detections.geojson --land-masks ../shared/data/ssdd/sealand

A detection is a match (IoU >= 0.5 with some true vessel: what the object F1 counts), a partial
overlap (0 < IoU < 0.5: a ship found but outlined badly, counted as a false alarm and a miss) or a
false alarm with no overlap; the latter two are placed by their centroid: on land, at the coast
(land within ``--coast-px``) or at sea, or unknown where the sample has no mask. Prints a table,
the spread of each kind's component score (mean probability: what ``output.min_score`` cuts on),
of its size and elongation, and the samples with the most false alarms. A detection's IoU is taken
against the sample's vessel outlines, as hil's object F1 matches them.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import shape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hil.rig import sea_mask  # noqa: E402
from search.discriminate import matched_detections  # noqa: E402


def classify(split: Path, which: str, detections: Path, land_masks: Path | None,
             coast_px: int) -> list[dict[str, Any]]:
    """One row per detection: sample, best IoU with a true vessel, place (land/coast/sea/unknown)."""
    rows = []
    for sample, found in matched_detections(split, which, detections):
        sea = sea_mask(sample, land_masks) if land_masks else None
        land = None if sea is None else ~sea
        to_px = ~sample.transform
        for feature, best in found:
            centroid = shape(feature["geometry"]).centroid
            col, row = to_px * (centroid.x, centroid.y)
            props = feature["properties"]
            rows.append({"sample": sample.name, "iou": best, "place": _place(row, col, land, coast_px),
                         "score": float(props["score"]), "max_score": float(props["max_score"]),
                         "area_px": int(props["area_px"]), "length": float(props["length_m"]),
                         "width": float(props["width_m"])})
    return rows


def _place(row: float, col: float, land: np.ndarray | None, coast_px: int) -> str:
    if land is None:
        return "unknown"
    r = int(np.clip(row, 0, land.shape[0] - 1))
    c = int(np.clip(col, 0, land.shape[1] - 1))
    if land[r, c]:
        return "land"
    near = land[max(r - coast_px, 0):r + coast_px + 1, max(c - coast_px, 0):c + coast_px + 1]
    return "coast" if near.any() else "sea"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", required=True, help="SPLIT.json:val or SPLIT.json:test")
    parser.add_argument("--detections", type=Path, required=True, help="detections.geojson of hil run")
    parser.add_argument("--land-masks", type=Path, help="folder of <stem>.png sea/land masks (0 = land)")
    parser.add_argument("--coast-px", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)  # SSDD chips and masks have none
    path, _, which = args.split.rpartition(":")
    rows = classify(Path(path), which, args.detections, args.land_masks, args.coast_px)
    kinds = {"match (IoU >= 0.5)": lambda r: r["iou"] >= 0.5, "partial (0 < IoU < 0.5)": lambda r: 0 < r["iou"] < 0.5,
             "false alarm (no overlap)": lambda r: r["iou"] == 0}
    places = ["sea", "coast", "land", "unknown"]
    print(f"{len(rows)} detections on {which} of {path}\n")
    print("| detection | " + " | ".join(places) + " | all |")
    print("|---|" + "---|" * (len(places) + 1))
    for name, test in kinds.items():
        counts = Counter(r["place"] for r in rows if test(r))
        print(f"| {name} | " + " | ".join(str(counts[p]) for p in places) + f" | {sum(counts.values())} |")
    # What a score cut (output.min_score) can separate: each kind's mean probability per component.
    print("\n| detection | n | component score: 10th, 50th, 90th percentile |\n|---|---|---|")
    for name, test in kinds.items():
        scores = [r["score"] for r in rows if test(r)]
        quantiles = ", ".join(f"{q:.3f}" for q in np.percentile(scores, [10, 50, 90])) if scores else "-"
        print(f"| {name} | {len(scores)} | {quantiles} |")
    # What a size or shape cut can separate: ships are small and long; land clutter is often neither.
    print("\n| detection | area px: 10th, 50th, 90th | length: 10th, 50th, 90th | length / width: 10th, 50th, 90th |"
          "\n|---|---|---|---|")
    for name, test in kinds.items():
        picked = [r for r in rows if test(r)]
        cells = []
        for values in ([r["area_px"] for r in picked], [r["length"] for r in picked],
                       [r["length"] / max(r["width"], 1e-9) for r in picked]):
            cells.append(", ".join(f"{q:.1f}" for q in np.percentile(values, [10, 50, 90])) if values else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    worst = Counter(r["sample"] for r in rows if r["iou"] == 0).most_common(5)
    print("\nmost false alarms:", ", ".join(f"{s} ({n})" for s, n in worst))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
