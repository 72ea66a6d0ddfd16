"""Object scores of finished hil runs against the truth as the loaders read it now, without running
the model again: each report's detections (``detections.geojson``, merged vessels with their
``scene``) scored against the samples' ``vessels`` exactly as hil's object F1 scores them, by hil's
own functions: the truth is each outline's part inside the image (``hil.score.scored_truth``: an
outline wholly outside it left out, a bow-tie made valid), matched one to one at ``[score] match_iou``
(0.5, hil's default settings) with hil's slack (``hil.score.match_objects``, ``IOU_SLACK``), pooled
over the samples of the data sets named. (Matched against the raw outlines, as this script did
until 2026-12-05, a ship whose outline ran past the image edge, found by its visible part, was a
hit in the run's report and a miss and a false alarm here.)

For a truth that changed under finished runs (since 2026-12-04 hrsid-official counts each ship of
its instance-id PNG, where touching ships had been one vessel), so that the figures of those runs
can be given again for the truth as it is, each with the detections it had:

    .venv/bin/python scripts/rescore_objects.py out/sar-test-amx \\
        --set hrsid-mini=hrsid-mini:../shared/data/hrsid-mini \\
        --set hrsid-official=hrsid-official:../shared/data/hrsid-official
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from flightsim.sources import open_source  # noqa: E402
from hil.geojson import own_geometry  # noqa: E402
from hil.score import match_objects, precision_recall_f1, scored_truth  # noqa: E402
from hil.settings import DEFAULTS  # noqa: E402


def rescore(report_dir: Path, sets: dict[str, str],
            min_iou: float = DEFAULTS.score.match_iou) -> dict[str, float | int]:
    """Pooled true positives, detections and true vessels of ``report_dir``'s samples of ``sets``
    (name prefix -> source spec), before (the report's) and now, with precision, recall and F1.

    "Now" is hil's object F1 of each scene's detections on the truth as it is read now: the same
    calls the rig makes (``hil.score.scored_truth``, then ``hil.score.match_objects`` at ``min_iou``,
    the rig's ``[score] match_iou`` by default), so that an unchanged truth gives the run's own figure."""
    report = json.loads((report_dir / "report.json").read_text())
    collection = json.loads((report_dir / "detections.geojson").read_text())
    features = collection["features"]
    samples = {}
    for prefix, spec in sets.items():
        source = open_source(spec)
        samples.update({f"{prefix}/{source[i].name}": source[i] for i in range(len(source))})
    before = [0, 0, 0]
    now = [0, 0, 0]
    for entry in report["per_scene"]:
        if entry["name"] not in samples:
            continue
        # The rig's truth, not the raw outlines: the parts inside the image (the pixels never load for it).
        truth = scored_truth(samples[entry["name"]])
        found = [own_geometry(f, collection) for f in features if f["properties"].get("scene") == entry["name"]]
        matched = match_objects(found, truth, min_iou)
        now = [now[0] + matched["true_positives"], now[1] + matched["n_predicted"], now[2] + matched["n_truth"]]
        before = [before[0] + round(entry["recall"] * entry["n_truth"]), before[1] + entry["n_detections"],
                  before[2] + entry["n_truth"]]
    out: dict[str, float | int] = {}
    for when, (tp, det, n) in (("before", before), ("now", now)):
        p, r, f1 = precision_recall_f1(tp, det, n)
        out.update({f"{when}_tp": tp, f"{when}_detections": det, f"{when}_truth": n,
                    f"{when}_precision": p, f"{when}_recall": r, f"{when}_f1": f1})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="hil report folders")
    parser.add_argument("--set", action="append", required=True, metavar="PREFIX=SPEC",
                        help="a data set of the runs: the samples' name prefix and its source spec")
    args = parser.parse_args(argv)
    sets = dict(s.split("=", 1) for s in args.set)
    for report_dir in args.reports:
        print(report_dir, json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                      for k, v in rescore(report_dir, sets).items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
