"""How the ground applies a second stage's cut to vessels a tile border cut: each rule of
``runtime.merge.BORDER_RULES`` through ``hil run`` on one part of a search's split, per bundle.

    .venv/bin/python scripts/border_rules.py --split out/seeds-sar8-searched/data/split.json:val \\
        --bundles models/sar out/seeds-sar8-searched/seed_1/discriminated \\
        out/seeds-sar8-searched/seed_2/discriminated --out out/border-rules

The payload sends every piece a border cut whatever its stage said (``provisional_ship_probability``);
only the ground's merge differs between the rules, so each run uses the same runtime and device.
Choose on validation: a rule picked on test would be tuned to it. Prints one line per bundle and
rule (pooled object F1, outline and mask vessel IoU) and writes OUT/rules.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import hil  # noqa: E402
from hil.__main__ import split_source  # noqa: E402
from hil.settings import DEFAULTS  # noqa: E402
from runtime.merge import BORDER_RULES  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", required=True, help="SPLIT.json:val (or :test, to report, not to choose)")
    parser.add_argument("--bundles", nargs="+", type=Path, required=True)
    parser.add_argument("--rules", nargs="+", default=list(BORDER_RULES), choices=list(BORDER_RULES))
    parser.add_argument("--device", default="myriadx-emu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = []
    for bundle in args.bundles:
        for rule in args.rules:
            config = dataclasses.replace(DEFAULTS, score=dataclasses.replace(DEFAULTS.score, border_rule=rule))
            report = hil.run(split_source(args.split), bundle, args.out / rule / "_".join(bundle.parts), device=args.device,
                             progress=False, config=config).report
            rows.append({"bundle": str(bundle), "rule": rule, "f1": report["f1"],
                         "outline_vessel_iou": report["outline_vessel_iou"], "vessel_iou": report["vessel_iou"]})
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rules.json").write_text(json.dumps({"split": args.split, "device": args.device, "rows": rows},
                                                    indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
