"""``python -m hil run``: a flight model on a scene through a runtime, scored, with a report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from hil.rig import DEFAULTS

    cfg = DEFAULTS["run"]
    parser = argparse.ArgumentParser(prog="python -m hil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="stream a scene through a runtime and score what comes back")
    run.add_argument("--scene", required=True, help="'synthetic' or a GeoTIFF path")
    run.add_argument("--seed", type=int, help=f"seed of a synthetic scene (default {cfg['synthetic_seed']})")
    run.add_argument("--truth", type=Path, help="mask GeoTIFF or vessel GeoJSON for a GeoTIFF scene")
    run.add_argument("--model", type=Path, required=True, help="flight model bundle directory")
    run.add_argument("--device", default=cfg["device"], help=f"device of the runtime started here (default {cfg['device']})")
    run.add_argument("--runtime", help="control endpoint of a running runtime instead of starting one")
    run.add_argument("--report", type=Path, default=Path(cfg["report_dir"]), help="output directory")
    run.add_argument("--rate", type=float, help="tiles per second (default: as fast as acknowledged)")
    run.add_argument("--window", type=int, help=f"tiles in flight (default {cfg['window']})")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from hil.rig import run as run_rig

    try:
        result = run_rig(args.scene, args.model, args.report, device=args.device, seed=args.seed,
                         truth=args.truth, runtime=args.runtime, rate_hz=args.rate, window=args.window,
                         progress=not args.quiet)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    r = result.report
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(
        f"model {r['model']['name']} ({r['model']['sha256'][:12]}) on {r['device']} "
        f"[{r['numerics']['inference_precision']} host arithmetic, profile {r.get('profile')}]\n"
        f"tiles: sent {r['tiles_sent']}, processed {r['tiles_processed']}, rejected {r['tiles_rejected']}, "
        f"lost {r['tiles_lost']}\n"
        f"mIoU {fmt(r['miou'])}, vessel IoU {fmt(r['vessel_iou'])}, precision {fmt(r['precision'])}, "
        f"recall {fmt(r['recall'])}, F1 {fmt(r['f1'])}\n"
        f"latency p50 {fmt(r['latency_ms']['p50'])} ms, p99 {fmt(r['latency_ms']['p99'])} ms; "
        f"throughput {fmt(r['throughput_tiles_per_s'])} tiles/s (measured on this host)"
        + (f"; Myriad X estimate {r['estimated_latency_ms']:.1f} ms/tile (cost model)\n" if r.get("estimated_latency_ms") else "\n")
        + f"outputs: {result.report_dir}/ (report.json, detections.geojson, overview.png)"
    )
    return 0 if r["tiles_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
