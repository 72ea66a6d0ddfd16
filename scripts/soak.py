"""Soak: stream tiles into a real runtime process for a given time, as fast as it acknowledges them
(the highest sustainable rate), and record resident memory, latency drift and losses.

    .venv/bin/python scripts/soak.py --minutes 30 --out out/soak.json

Every ``--sample-s`` seconds: the runtime's resident set (VmRSS from /proc), the ground latency
percentiles over that interval, tiles sent and results received. Growth and drift compare the last
``--compare`` samples with the first ones after ``--warmup-s`` (allocators and caches settle first). Exits 1 if
resident memory grew by 5% or more, p99 latency drifted by 10% or more, or a tile was lost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from flightsim.streamer import Streamer
from flightsim.synthetic import generate_scene, write_scene
from flightsim.tiles import Tile, tile_scene
from hil.collector import ResultCollector
from hil.runtime_proc import RuntimeProcess
from runtime.bundle import read_bundle
from runtime.client import ControlClient

REPO = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--compare", type=int, default=5, help="samples averaged at each end for drift")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    size = read_bundle(args.model).manifest["input"]["shape"][2]
    scene_tiles = list(tile_scene(write_scene(generate_scene(7), work / "scene")["scene"], size))
    proc = RuntimeProcess(args.device, work / "runtime.log", 60)
    samples: list[dict] = []
    try:
        control = ControlClient(proc.endpoints["control"])
        control.load_model(args.model)
        received: set[str] = set()
        not_ok = 0
        collector = ResultCollector(proc.endpoints["results"], acks=proc.endpoints.get("acks"))
        streamer = Streamer(proc.endpoints["tiles"], window=args.window)
        start = time.monotonic()
        end = start + 60 * args.minutes
        next_sample = start + args.sample_s
        sent = seen = 0
        while time.monotonic() < end:
            t = scene_tiles[sent % len(scene_tiles)]
            tile = Tile("soak", f"soak/{sent}", sent, t.pixels, t.transform, t.crs, t.window, t.bands)
            streamer.send_frames(tile.tile_id, tile.frames())
            sent += 1
            now = time.monotonic()
            if now >= next_sample:
                # Take this interval's results out of the collector and forget the sender's record of
                # them: a client that kept 80,000 results would slow itself down (its garbage
                # collector walks them all) and the drift measured would be the harness's own.
                batch = collector.results[:len(collector.results)]
                del collector.results[:len(batch)]
                seen += len(batch)
                lat = [1e3 * (at - streamer.log.sent_at.pop(r["tile_id"])) for at, r, _ in batch]
                for _, r, _ in batch:
                    streamer.log.acks.pop(r["tile_id"], None)
                    received.add(r["tile_id"])
                    not_ok += r["status"] != "ok"
                status = control.status()["counters"]
                samples.append({
                    "t_s": round(now - start, 1), "rss_kib": rss_kib(proc.proc.pid), "tiles_sent": sent,
                    "results": seen, "tiles_per_s": len(batch) / args.sample_s,
                    "p50_ms": float(np.percentile(lat, 50)) if lat else None,
                    "p99_ms": float(np.percentile(lat, 99)) if lat else None,
                    # The payload's own latency (tile received to result sent), last 1000 tiles.
                    "runtime_p50_ms": status["latency_ms_p50"], "runtime_p99_ms": status["latency_ms_p99"],
                })
                print(json.dumps(samples[-1]), flush=True)
                next_sample += args.sample_s
        streamer.drain()
        collector.wait_for(sent - seen, 60)
        received |= {r["tile_id"] for _, r, _ in collector.results}
        not_ok += sum(r["status"] != "ok" for _, r, _ in collector.results)
        collector.close()
        streamer.close()
    finally:
        proc.close()
    # Drift compares windows, not single samples: the mean of the first --compare samples after
    # the warm-up against the mean of the last --compare samples.
    settled = [x for x in samples if x["t_s"] >= args.warmup_s and x["p99_ms"] is not None]
    k = max(1, min(args.compare, len(settled) // 2))
    base, last = (settled[:k], settled[-k:]) if settled else ([], [])

    def mean(rows: list[dict], key: str) -> float | None:
        return float(np.mean([r[key] for r in rows])) if rows else None

    summary = {
        "minutes": args.minutes, "device": args.device, "model": str(args.model), "window": args.window,
        "tiles_sent": sent, "results": len(received), "not_ok": not_ok,
        "tiles_lost": sent - len(received),
        "rss_growth_pct": 100 * (mean(last, "rss_kib") / mean(base, "rss_kib") - 1) if base else None,
        "p99_drift_pct": 100 * (mean(last, "p99_ms") / mean(base, "p99_ms") - 1) if base else None,
        "runtime_p99_drift_pct": 100 * (mean(last, "runtime_p99_ms") / mean(base, "runtime_p99_ms") - 1) if base else None,
        "baseline": {"samples": len(base), "rss_kib": mean(base, "rss_kib"), "p99_ms": mean(base, "p99_ms"),
                     "runtime_p99_ms": mean(base, "runtime_p99_ms"),
                     "p50_ms": mean(base, "p50_ms"), "tiles_per_s": mean(base, "tiles_per_s")},
        "end": {"samples": len(last), "rss_kib": mean(last, "rss_kib"), "p99_ms": mean(last, "p99_ms"),
                "runtime_p99_ms": mean(last, "runtime_p99_ms"),
                "p50_ms": mean(last, "p50_ms"), "tiles_per_s": mean(last, "tiles_per_s")},
        "samples": samples,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))
    ok = (summary["tiles_lost"] == 0 and summary["rss_growth_pct"] is not None and summary["rss_growth_pct"] < 5
          and summary["p99_drift_pct"] is not None and abs(summary["p99_drift_pct"]) < 10)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
