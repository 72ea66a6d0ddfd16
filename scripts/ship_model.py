"""Ship a search's flight model: score it on the held-out test split and write the bundle with
those figures in its manifest.

    .venv/bin/python scripts/ship_model.py --search out/sar --config configs/sar.toml --out models/sar

1. ``OUT/flight_model`` (the search's best candidate) gets ``trained_for`` from the config where
   its manifest lacks it, and is written to ``--out`` as the bundle to measure;
2. that bundle runs through ``hil run --split OUT/data/split.json:test`` on ``--device`` (the
   twin by default): pooled object and pixel scores, and object scores per data set;
3. the figures go into ``metrics.test`` with ``measured_bundle_id``, the id of the bundle measured
   in step 2. Its IR files, threshold and smallest vessel are byte for byte those of the shipped
   bundle; only the manifest's metrics differ (a manifest cannot hold its own hash);
4. the shipped bundle itself runs through the same ``hil run`` again: its id is the id the rig
   reports, and its figures must equal those its manifest records (else the script exits 1). The
   check goes to ``OUT.check.json`` beside the bundle.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle  # noqa: E402
from runtime.host import host_line  # noqa: E402
from search.config import load_config  # noqa: E402

from scripts.seed_study import test_scores  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--search", type=Path, required=True, help="the search's --out")
    parser.add_argument("--config", type=Path, required=True, help="the search's --config")
    parser.add_argument("--out", type=Path, required=True, help="where the shipped bundle goes")
    parser.add_argument("--device", default="myriadx-emu")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    best = read_bundle(args.search / "flight_model")
    manifest = rewritable_manifest(best)
    manifest.setdefault("trained_for", {"modality": cfg["data"]["modality"], "gsd_m": list(cfg["data"]["gsd_m"]),
                                        "data": cfg["data"]["source"]})
    staging = args.out.with_name(args.out.name + ".measuring")
    shutil.rmtree(staging, ignore_errors=True)
    measured = rewrite_bundle(best, staging, manifest)
    split = args.search / "data" / "split.json"
    test = test_scores(staging, split, args.search / "test_report", args.device)
    # the device the rig measured on, not the name asked for: "flight" is the stick, an NPU or the twin
    device = test.get("device") or args.device
    manifest["metrics"] = {**manifest.get("metrics", {}), "test": {
        **test, "measured_bundle_id": measured.id, "device": device, "host": host_line(),
        "date": time.strftime("%Y-%m-%d"),
        "measured_on": f"hil run --split {split}:test on {device}: pooled over every test sample; "
                       "never trained on nor used to select"}}
    shutil.rmtree(args.out, ignore_errors=True)
    shipped = rewrite_bundle(best, args.out, manifest)
    shutil.rmtree(staging)
    again = test_scores(args.out, split, args.search / "test_report_shipped", args.device)
    figures = ("f1", "precision", "recall", "vessel_iou", "miou")
    check = {"shipped_bundle_id": shipped.id, "measured_bundle_id": again["bundle_sha256"],
             "manifest": {k: test[k] for k in figures}, "shipped": {k: again[k] for k in figures}}
    check["identical"] = shipped.id == again["bundle_sha256"] and check["manifest"] == check["shipped"]
    args.out.with_name(args.out.name + ".check.json").write_text(json.dumps(check, indent=1))
    print(json.dumps({"shipped": str(args.out), "id": shipped.id, "check": check, "by_set": test["by_set"]}, indent=1))
    return 0 if check["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
