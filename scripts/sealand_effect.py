"""The effect of sea/land masking on a hil run over SSDD chips: detections whose centroid falls on
land (the chip's ``sealand/<id>.png``, 0 = land) are dropped on the ground, and the object scores
are computed again with and without that step.

    .venv/bin/python scripts/sealand_effect.py --report out/seeds-searched/seed_0/test \\
        --split out/sar/data/split.json:test --sealand ../shared/data/ssdd/sealand

Only samples that have a sea/land mask are scored (the SSDD chips); prints one JSON line.
Masking is a ground step here because the masks exist for these chips only: on board it would need
a coastline database in the payload (see docs/models.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from shapely.geometry import shape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hil.__main__ import split_source  # noqa: E402
from hil.rig import DEFAULTS  # noqa: E402
from hil.score import match_objects  # noqa: E402


def pooled(pairs: list[tuple[list[Any], list[Any]]]) -> dict[str, float]:
    tp = n_pred = n_truth = 0
    for pred, truth in pairs:
        m = match_objects(pred, truth, DEFAULTS["score"]["match_iou"])
        tp, n_pred, n_truth = tp + m["true_positives"], n_pred + m["n_predicted"], n_truth + m["n_truth"]
    p = tp / n_pred if n_pred else (1.0 if not n_truth else 0.0)
    r = tp / n_truth if n_truth else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4),
            "n_predicted": n_pred, "n_truth": n_truth}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="a hil report directory (detections.geojson)")
    parser.add_argument("--split", required=True, help="SPLIT_JSON:ROLE that the report was run on")
    parser.add_argument("--sealand", type=Path, required=True, help="folder of <id>.png, 0 = land")
    args = parser.parse_args(argv)
    detections: dict[str, list[Any]] = {}
    for f in json.loads((args.report / "detections.geojson").read_text())["features"]:
        detections.setdefault(f["properties"]["scene"], []).append(shape(f["geometry"]))
    plain, masked = [], []
    for sample in split_source(args.split):
        stem = sample.name.split("/")[-1]
        path = args.sealand / f"{stem}.png"
        if not path.is_file():
            continue
        with rasterio.open(path) as src:
            sea = src.read(1) > 0
        preds = detections.get(sample.name, [])
        inv = ~sample.transform
        keep = []
        for p in preds:
            col, row = inv * (p.centroid.x, p.centroid.y)
            r, c = int(np.clip(row, 0, sea.shape[0] - 1)), int(np.clip(col, 0, sea.shape[1] - 1))
            if sea[r, c]:
                keep.append(p)
        plain.append((preds, sample.vessels or []))
        masked.append((keep, sample.vessels or []))
    print(json.dumps({"samples": len(plain), "without_masking": pooled(plain), "land_masked_on_ground": pooled(masked)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
