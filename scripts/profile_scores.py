"""A flight model's scores under every Myriad X hypothesis profile (and on the CPU in f32), on the twin.

    .venv/bin/python scripts/profile_scores.py --model models/sar --split out/sar/data/split.json:test \
        --out out/profile-scores-sar.json
    .venv/bin/python scripts/profile_scores.py --model models/default --scene synthetic --seed 7

Why: the twin's fp16-myriadx rests partly on hypotheses (profiles.toml, status); a model whose
scores move between them depends on a guess about the device. Each profile is one ``hil run`` on
the twin with ``--profile``; the CPU row (f32 arithmetic, FP16 weights) is the reference.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import hil
from hil.__main__ import split_source
from runtime.host import host_line
from runtime.profiles import get_profile, profile_names

KEYS = ("miou", "vessel_iou", "precision", "recall", "f1", "tiles_lost")


def myriad_profiles() -> list[str]:
    """fp16-myriadx and every hypothesis profile built on it."""
    return [n for n in profile_names() if "myriadx" in n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--split", help="SPLIT_JSON:ROLE, as hil run --split")
    parser.add_argument("--scene", help="a scene spec, as hil run --scene")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--profiles", nargs="+", default=None, help="default: every myriadx profile")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if (args.split is None) == (args.scene is None):
        parser.error("give exactly one of --split and --scene")
    profiles = args.profiles or myriad_profiles()
    for name in profiles:
        get_profile(name)
    work = Path(args.out or "out/profile-scores").with_suffix("")
    rows: dict[str, Any] = {}
    runs = [("CPU", None)] + [("myriadx-emu", p) for p in profiles]
    for device, profile in runs:
        scene = split_source(args.split) if args.split else args.scene
        label = profile or "CPU f32"
        r = hil.run(scene, args.model, work / label, device=device, seed=args.seed, profile=profile).report
        rows[label] = {k: r.get(k) for k in KEYS} | {"profile_source": r["numerics"].get("profile_source")}
        print(f"{label:24s} " + "  ".join(f"{k} {rows[label][k]:.4f}" for k in KEYS[:5] if rows[label][k] is not None))
    result = {"model": str(args.model), "data": args.split or args.scene, "seed": args.seed, "rows": rows,
              "host": host_line(), "date": time.strftime("%Y-%m-%d")}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
