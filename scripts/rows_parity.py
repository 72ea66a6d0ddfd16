"""The second stage fitted on rows version 2 (each vessel's row from the tile owning its centroid)
against version 3 (from the tile whose verdict decides it in flight: ``search.discriminate._judging_tile``),
on the same network, split and hil runs, each judged where it flies: ``hil run`` on the validation
split with the stage in the bundle and hil's default border rule.

    .venv/bin/python scripts/rows_parity.py --model models/sar --split out/sar8/data/split.json \\
        --out out/rows-parity

``--model`` is a bundle with or without a second stage; its stage is dropped and the cuts it had
replaced (``metrics.discriminator.cuts_replaced``) restored, then the cuts are opened as
``search discriminate`` opens them, the training and validation splits go through hil once, and
each version's rows are fitted (``[export] discriminator_kind``: trees) with the cut chosen on its
own validation rows. Prints and writes OUT/parity.json: per version the fit's validation F1 (on
its rows), the cut, and the validation split's pooled F1, outline and mask vessel IoU through hil.
The test split is not read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

import hil  # noqa: E402
from hil.settings import DEFAULTS  # noqa: E402
import search.discriminate as disc  # noqa: E402
from hil.__main__ import split_source  # noqa: E402
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle  # noqa: E402


def _centroid_tile(burnt: np.ndarray, grid: list, owned: list) -> tuple[int, int, int, int]:
    """Rows version 2's choice: the centroid's tile, or where no piece lies there the tile holding most."""
    window = disc._tile_view(burnt, grid, owned)
    row, col, h, w = window
    if burnt[row:row + h, col:col + w].any():
        return window
    return max(grid, key=lambda g: int(burnt[g[0]:g[0] + g[2], g[1]:g[1] + g[3]].sum()))


def _pre_stage(model: Path, out: Path) -> None:
    """``model`` without its second stage and with the cuts the stage replaced."""
    bundle = read_bundle(model)
    manifest = rewritable_manifest(bundle)
    replaced = (manifest.get("metrics", {}).get("discriminator") or {}).get("cuts_replaced") or {}
    manifest["output"].pop("discriminator", None)
    manifest["output"].update({k: v for k, v in replaced.items() if v is not None})
    rewrite_bundle(bundle, out, manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--split", type=Path, required=True, help="the search's OUT/data/split.json")
    parser.add_argument("--device", default="myriadx-emu")
    parser.add_argument("--kind", default="trees")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    work = args.out / "work"
    _pre_stage(args.model, work / "pre_stage")
    before = disc.open_cuts(work / "pre_stage", work / "opened")
    opened = work / "opened"
    bundle = read_bundle(opened)
    tile = bundle.manifest["input"]["shape"][2]
    bands = disc.model_band_names(bundle.manifest["input"])
    for which in ("train", "val"):
        hil.run(split_source(f"{args.split}:{which}"), opened, work / which, device=args.device, progress=False)
    results = {"model": str(args.model), "split": str(args.split), "device": args.device, "kind": args.kind,
               "cuts_replaced": before, "versions": {}}
    probability = disc.DeviceProbability(opened, args.device)
    try:
        for version, choose in (("2", _centroid_tile), ("3", disc._judging_tile)):
            parts = {}
            original = disc._judging_tile
            disc._judging_tile = choose  # candidates() looks it up at call time
            try:
                for which in ("train", "val"):
                    parts[which] = disc.candidates(args.split, which, work / which / "detections.geojson", tile,
                                                   DEFAULTS.run.overlap_px, bands, probability)
            finally:
                disc._judging_tile = original
            x_train, y_train = parts["train"].rows, parts["train"].labels
            x_val, y_val, n_val = parts["val"].rows, parts["val"].labels, parts["val"].n_truth
            fitted = disc.fit_stage(args.kind, x_train, y_train)
            p_val = fitted.probability(x_val)
            f1_by_cut = {float(c): disc.object_f1(p_val >= c, y_val, n_val) for c in disc.CUTS}
            cut = disc.choose_cut(f1_by_cut, {}, "f1")  # these versions' stages were cut by F1
            stage = dataclasses.replace(fitted, cut=cut).to_manifest()
            manifest = rewritable_manifest(bundle)
            manifest["output"]["discriminator"] = json.loads(json.dumps(stage))
            staged = args.out / f"v{version}"
            rewrite_bundle(bundle, staged, manifest)
            report = hil.run(split_source(f"{args.split}:val"), staged, work / f"val_v{version}", device=args.device,
                             progress=False).report
            row = {"fit_val_f1_on_its_rows": f1_by_cut[cut], "cut": cut, "train_candidates": int(len(y_train)),
                   "hil_val_f1": report["f1"], "hil_val_precision": report["precision"],
                   "hil_val_recall": report["recall"], "hil_val_outline_vessel_iou": report["outline_vessel_iou"],
                   "hil_val_vessel_iou": report["vessel_iou"]}
            results["versions"][version] = row
            print(json.dumps({"rows_version": version, **row}), flush=True)
    finally:
        probability.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parity.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
