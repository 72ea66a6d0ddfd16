"""Soak: stream tiles into a real runtime process for a given time, as fast as it acknowledges them
(the highest sustainable rate), and record resident memory, latency drift and losses.

    .venv/bin/python scripts/soak.py --minutes 30 --out out/soak.json
    .venv/bin/python scripts/soak.py --minutes 3 --runtime-config b.toml   # a runtime configured otherwise

Every ``--sample-s`` seconds: the runtime's resident set (VmRSS from /proc), the ground latency
percentiles over that interval, tiles sent and results received. Growth and drift compare the last
``--compare`` samples with the first ones after ``--warmup-s`` (allocators and caches settle first);
the two windows never share a sample, so at least 2 samples must fall after the warm-up.

Every tile sent is counted once as processed (a result with status ``ok``), rejected (a result with
any other status) or lost (no result): ``tiles_sent == processed + rejected + tiles_lost``.

Exits 1 if resident memory grew by 5% or more, p99 latency drifted by 10% or more, a tile was lost
or rejected, fewer than 2 samples came after the warm-up, the runtime exited with a code other than
0, or the soak stopped early (the runtime died, the link stalled): the summary, partial then, is
still printed and written to ``--out``, with the error. The work folder (the runtime's log) is
removed on success and kept, its path printed, on failure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flightsim.streamer import Streamer  # noqa: E402
from flightsim.synthetic import generate_scene, write_scene  # noqa: E402
from flightsim.tiles import Tile, tile_scene  # noqa: E402
from hil.collector import ResultCollector  # noqa: E402
from hil.runtime_proc import RuntimeProcess  # noqa: E402
from runtime.bundle import read_bundle  # noqa: E402
from runtime.client import ControlClient  # noqa: E402
from runtime.config import non_negative_float, positive_float, positive_int  # noqa: E402
from scripts.verdict import finish  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: Pass thresholds (percent): resident memory growth and p99 latency drift, last window vs first.
RSS_GROWTH_LIMIT_PCT = 5.0
P99_DRIFT_LIMIT_PCT = 10.0


def rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` in KiB (VmRSS from /proc): what the soak watches grow."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid} (has it exited?)")


def planned_settled_samples(minutes: float, sample_s: float, warmup_s: float) -> int:
    """How many samples at most can fall at or after the warm-up: one every ``sample_s`` strictly
    before the end of the run. Used to refuse, before a long run, settings that cannot give the
    2 settled samples a comparison needs."""
    run_s = 60 * minutes
    last = math.ceil(run_s / sample_s) - 1                 # k * sample_s < run_s
    first = max(1, math.ceil(warmup_s / sample_s))         # k * sample_s >= warmup_s
    return max(0, last - first + 1)


def mean(rows: list[dict[str, Any]], key: str) -> float | None:
    """The mean of ``key`` over ``rows``, skipping None (an interval with no result has no
    latency); None when nothing is left, so that a summary can still be written."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def growth_pct(base: float | None, last: float | None) -> float | None:
    """Percent change from ``base`` to ``last``; None when either is missing or ``base`` is 0."""
    if base is None or last is None or base == 0:
        return None
    return 100 * (last / base - 1)


def settled_windows(samples: list[dict[str, Any]], warmup_s: float,
                    compare: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """The baseline and end windows drift compares: the first and the last ``k`` samples taken at or
    after ``warmup_s`` that have a p99, with ``k = min(compare, n // 2)`` so that the two windows
    never overlap (with one sample, base and end would be the same sample: 0% by construction).

    Returns ``(base, last, None)``, or ``([], [], why)`` when fewer than 2 such samples exist.
    """
    settled = [x for x in samples if x["t_s"] >= warmup_s and x.get("p99_ms") is not None]
    if len(settled) < 2:
        return [], [], (f"not enough samples after warm-up: {len(settled)} of {len(samples)} samples "
                        f"taken at or after --warmup-s {warmup_s:g} s with a latency, need at least 2")
    k = min(compare, len(settled) // 2)
    return settled[:k], settled[-k:], None


def failures(summary: dict[str, Any]) -> list[str]:
    """Why the soak failed, one line per reason; empty when it passed."""
    why = []
    if summary.get("error"):
        why.append(f"soak stopped early: {summary['error']}")
    if summary.get("runtime_exit_code") != 0:
        why.append(f"runtime exit code {summary.get('runtime_exit_code')}, not 0")
    if summary.get("tiles_lost"):
        why.append(f"{summary['tiles_lost']} tiles lost")
    if summary.get("rejected"):
        why.append(f"{summary['rejected']} tiles rejected")
    if summary.get("samples_error"):
        why.append(summary["samples_error"])
    rss, p99 = summary.get("rss_growth_pct"), summary.get("p99_drift_pct")
    if not summary.get("samples_error"):
        if rss is None or rss >= RSS_GROWTH_LIMIT_PCT:
            why.append(f"resident memory growth {rss} %, limit {RSS_GROWTH_LIMIT_PCT} %")
        if p99 is None or abs(p99) >= P99_DRIFT_LIMIT_PCT:
            why.append(f"p99 latency drift {p99} %, limit ±{P99_DRIFT_LIMIT_PCT} %")
    return why


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked: periods and counts positive, and enough run after the warm-up
    for 2 samples (else the soak would run its whole length and then fail for want of them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=positive_float, default=30.0)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "default")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--sample-s", type=positive_float, default=30.0)
    parser.add_argument("--warmup-s", type=non_negative_float, default=60.0)
    parser.add_argument("--window", type=positive_int, default=8)
    parser.add_argument("--compare", type=positive_int, default=5, help="samples averaged at each end for drift")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runtime-config", type=Path,
                        help="a TOML of runtime settings over its defaults (runtime/defaults.toml), e.g. "
                             "[inference] collect_group = 1 to compare")
    args = parser.parse_args(argv)
    planned = planned_settled_samples(args.minutes, args.sample_s, args.warmup_s)
    if planned < 2:
        parser.error(f"not enough samples after warm-up: --minutes {args.minutes:g} ({60 * args.minutes:g} s) "
                     f"with --sample-s {args.sample_s:g} and --warmup-s {args.warmup_s:g} leaves room for "
                     f"{planned} samples after the warm-up, need at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 if it passed (see the module docstring), else 1."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    samples: list[dict[str, Any]] = []
    first_status: dict[str, str] = {}  # tile_id -> status of its first result
    anonymous_results = duplicate_results = sent = 0
    error: str | None = None
    code: int | None = None
    proc: RuntimeProcess | None = None
    start = time.monotonic()
    try:
        size = read_bundle(args.model).manifest["input"]["shape"][2]
        scene_tiles = list(tile_scene(write_scene(generate_scene(7), work / "scene")["scene"], size))
        proc = RuntimeProcess(args.device, work / "runtime.log", 60, config=args.runtime_config)
        control = ControlClient(proc.endpoints["control"])
        control.load_model(args.model)
        collector = ResultCollector(proc.endpoints["results"], acks=proc.endpoints.get("acks"))
        # want_done=False: soak never resends, so the runtime need not send "done" and the sender's
        # log.done (one id per tile for the whole run) stays empty: no harness-side growth.
        streamer = Streamer(proc.endpoints["tiles"], window=args.window, want_done=False)
        # Results whose tile's ack the sender has not read yet: forgotten once it has, else the
        # late ack would find no record of its tile and be filed (kept) as anonymous.
        to_forget: set[str] = set()

        def take(batch: list[tuple[float, dict[str, Any], Any]]) -> list[float]:
            """Count the results of ``batch``; return their ground latencies (ms)."""
            nonlocal anonymous_results, duplicate_results
            lat = []
            for at, r, _ in batch:
                tile_id = r.get("tile_id")
                if not isinstance(tile_id, str):
                    anonymous_results += 1
                    continue
                if tile_id in first_status:
                    duplicate_results += 1
                    continue
                first_status[tile_id] = r.get("status")
                sent_at = streamer.log.sent_at.get(tile_id)
                if sent_at is not None:
                    lat.append(1e3 * (at - sent_at))
                to_forget.add(tile_id)
            return lat

        def forget() -> None:
            """Drop the sender's record of tiles that have their result and their ack."""
            for tile_id in [t for t in to_forget if t in streamer.log.acks]:
                streamer.log.sent_at.pop(tile_id, None)
                streamer.log.acks.pop(tile_id, None)
                to_forget.discard(tile_id)

        start = time.monotonic()
        end = start + 60 * args.minutes
        next_sample = start + args.sample_s
        while time.monotonic() < end:
            t = scene_tiles[sent % len(scene_tiles)]
            tile = Tile("soak", f"soak/{sent}", sent, t.pixels, t.transform, t.crs, t.window, t.bands)
            streamer.send_frames(tile.tile_id, tile.frames(want_done=False))
            sent += 1
            now = time.monotonic()
            if now >= next_sample:
                if proc.proc.poll() is not None:
                    raise RuntimeError(f"runtime exited mid-soak with code {proc.proc.returncode}")
                # Take this interval's results out of the collector and forget the sender's record of
                # them: a client that kept 80,000 results would slow itself down (its garbage
                # collector walks them all) and the drift measured would be the harness's own.
                batch = collector.results[:len(collector.results)]
                del collector.results[:len(batch)]
                lat = take(batch)
                forget()
                status = control.status()["counters"]
                samples.append({
                    "t_s": round(now - start, 1), "rss_kib": rss_kib(proc.proc.pid), "tiles_sent": sent,
                    "results": len(first_status), "tiles_per_s": len(batch) / args.sample_s,
                    "p50_ms": float(np.percentile(lat, 50)) if lat else None,
                    "p99_ms": float(np.percentile(lat, 99)) if lat else None,
                    # The payload's own latency (tile received to result sent), last 1000 tiles.
                    "runtime_p50_ms": status["latency_ms_p50"], "runtime_p99_ms": status["latency_ms_p99"],
                })
                print(json.dumps(samples[-1]), flush=True)
                next_sample += args.sample_s
        streamer.drain()
        collector.wait_for(sent - len(first_status) - anonymous_results, 60)
        take(list(collector.results))
        collector.close()
        streamer.close()
    except Exception as exc:  # noqa: BLE001 - a dying runtime is what a soak is for: report it, with what was measured
        error = f"{type(exc).__name__}: {exc}"
        print(f"soak stopped early: {error}", file=sys.stderr)
    finally:
        if proc is not None:
            code = proc.close()
    # Drift compares windows, not single samples: the mean of the first --compare samples after
    # the warm-up against the mean of the last --compare samples.
    base, last, samples_error = settled_windows(samples, args.warmup_s, args.compare)
    if samples_error:
        print(samples_error, file=sys.stderr)
    processed = sum(1 for s in first_status.values() if s == "ok")
    summary: dict[str, Any] = {
        "minutes": args.minutes, "device": args.device, "model": str(args.model), "window": args.window,
        "tiles_sent": sent, "processed": processed, "rejected": len(first_status) - processed,
        "tiles_lost": sent - len(first_status), "results": len(first_status),
        "anonymous_results": anonymous_results, "duplicate_results": duplicate_results,
        "runtime_exit_code": code, "error": error, "samples_error": samples_error,
        "rss_growth_pct": growth_pct(mean(base, "rss_kib"), mean(last, "rss_kib")),
        "p99_drift_pct": growth_pct(mean(base, "p99_ms"), mean(last, "p99_ms")),
        "runtime_p99_drift_pct": growth_pct(mean(base, "runtime_p99_ms"), mean(last, "runtime_p99_ms")),
        "baseline": {"samples": len(base), "rss_kib": mean(base, "rss_kib"), "p99_ms": mean(base, "p99_ms"),
                     "runtime_p99_ms": mean(base, "runtime_p99_ms"),
                     "p50_ms": mean(base, "p50_ms"), "tiles_per_s": mean(base, "tiles_per_s")},
        "end": {"samples": len(last), "rss_kib": mean(last, "rss_kib"), "p99_ms": mean(last, "p99_ms"),
                "runtime_p99_ms": mean(last, "runtime_p99_ms"),
                "p50_ms": mean(last, "p50_ms"), "tiles_per_s": mean(last, "tiles_per_s")},
        "samples": samples,
    }
    why = failures(summary)
    summary["failures"] = why
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=1))
    return finish(summary, args.out, work, f"work folder kept: {work} (runtime log: {work / 'runtime.log'})")


if __name__ == "__main__":
    sys.exit(main())
