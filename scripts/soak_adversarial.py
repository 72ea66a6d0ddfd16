"""An adversarial soak: steady tiles, then a flood of noise tiles with no ground reading, then the
ground back, restarted once more mid-stream; with ground-acknowledged delivery.

    .venv/bin/python scripts/soak_adversarial.py --phase-s 60 --out out/soak-adversarial.json

A real runtime process (``runtime serve --ground-ack``, CPU, the brightness model of the tests or
``--model``). Phases of ``--phase-s`` seconds each:

1. steady: scene tiles, the ground reading and acknowledging;
2. flood: noise tiles (about 150 polygons each, slow to vectorise). The sender switches to noise
   while the reader is still there, and the reader is closed only once the runtime has accepted at
   least ``max_tiles_inside`` noise tiles (else the runtime, full of steady tiles, would take no
   noise at all and the flood would test nothing); then **no reader** for ``--phase-s``: the
   runtime must stop taking tiles at its bound (``max_tiles_inside``) and keep its memory flat;
3. back: a reader connects (every result waiting for it must arrive), the stream goes on, and the
   reader is restarted once halfway (results in its buffers are lost with it, and sent again).

Every ``--sample-s``: the runtime's resident memory and the tiles inside it. At the end every tile
sent must have reached the ground as an "ok" result and be reported done to its sender; exits 1
otherwise, or if no noise tile was accepted, fewer than ``max_tiles_inside`` before the reader closed, more tiles than
``max_tiles_inside`` were ever inside (the runtime's own high-water mark, ``tiles_inside_peak`` of its
status, read at the end: samples miss a burst between two of them), memory during the flood rose more
than ``--rss-bound-mb`` above its level at the end of the steady phase, the runtime exited with a code
other than 0, or the run stopped early (the summary is written all the same). The work folder is
removed on success and kept, its path printed, on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flightsim.streamer import Streamer  # noqa: E402
from flightsim.tiles import Tile  # noqa: E402
from hil.collector import ResultCollector  # noqa: E402
from hil.runtime_proc import RuntimeProcess  # noqa: E402
from runtime.client import ControlClient  # noqa: E402
from runtime.config import positive_float  # noqa: E402
from scripts.verdict import finish  # noqa: E402
from tests.conftest import make_brightness_bundle  # noqa: E402


def rss_mb(pid: int) -> float:
    """The resident set of process ``pid`` in MB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid} (has it exited?)")


def flood_failures(summary: dict[str, Any]) -> list[str]:
    """Why the flood phase did not test or did not pass what it is for; empty when it did.

    A flood that sent or got accepted no noise tile says nothing about memory under a flood (the
    defect found by review on 2026-12-03: the reader was closed first, the runtime was already
    full of steady tiles, and not one noise tile left the sender)."""
    why = []
    bound = summary.get("max_tiles_inside")
    if not summary.get("noise_tiles_accepted"):
        why.append(f"no noise tile accepted by the runtime ({summary.get('noise_tiles_sent')} sent): the flood tested nothing")
    elif bound is not None and summary.get("noise_accepted_before_reader_closed", 0) < bound:
        why.append(f"only {summary.get('noise_accepted_before_reader_closed')} noise tiles accepted before the reader "
                   f"closed, wanted max_tiles_inside = {bound}")
    # The runtime's high-water mark, not the samples' largest (max_inside_seen): a burst above the
    # bound between two samples was missed (review 19).
    peak = summary.get("tiles_inside_peak")
    if bound is None or peak is None:
        why.append("the most tiles inside the runtime (tiles_inside_peak) or its bound not known")
    elif peak > bound:
        why.append(f"{peak} tiles were inside the runtime at once, above its bound max_tiles_inside = {bound}")
    return why


def last_peak(proc: RuntimeProcess, control: ControlClient | None, samples: list[dict[str, Any]]) -> int | None:
    """The runtime's ``tiles_inside_peak`` (the most tiles inside it at once since it started), asked
    of it now if it still runs, else the samples' highest; None if neither is known."""
    if control is not None and proc.proc.poll() is None:
        try:
            return int(control.status(timeout_s=10)["counters"]["queue_depth"]["tiles_inside_peak"])
        except Exception:  # noqa: BLE001 - a runtime that cannot answer: fall back on the samples
            pass
    return max((s["inside_peak"] for s in samples if "inside_peak" in s), default=None)


def failures(summary: dict[str, Any]) -> list[str]:
    """Why the adversarial soak failed, one line per reason; empty when it passed."""
    why = []
    if summary.get("error"):
        why.append(f"soak stopped early: {summary['error']}")
    if summary.get("runtime_exit_code") != 0:
        why.append(f"runtime exit code {summary.get('runtime_exit_code')}, not 0")
    if summary.get("tiles_lost"):
        why.append(f"{summary['tiles_lost']} tiles lost")
    if summary.get("rejected"):
        why.append(f"{summary['rejected']} tiles rejected: {summary.get('rejected_reasons')}")
    if summary.get("not_done"):
        why.append(f"{summary['not_done']} tiles not reported done")
    why += flood_failures(summary)
    steady, flood = summary.get("rss_steady_mb"), summary.get("rss_flood_max_mb")
    if steady is None or flood is None:
        why.append("no memory sample for the steady or the flood phase")
    elif flood - steady > summary["rss_bound_mb"]:
        why.append(f"memory rose {flood - steady:.1f} MB during the flood, bound {summary['rss_bound_mb']} MB")
    return why


def main(argv: list[str] | None = None) -> int:
    """Run the adversarial soak; 0 if it passed (see the module docstring), else 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-s", type=positive_float, default=60.0)
    parser.add_argument("--sample-s", type=positive_float, default=5.0)
    parser.add_argument("--rss-bound-mb", type=positive_float, default=100.0)
    parser.add_argument("--model", type=Path, default=None, help="default: the tests' 64 px brightness model")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.sample_s > args.phase_s / 2:
        parser.error(f"--sample-s {args.sample_s:g} must be at most half of --phase-s {args.phase_s:g}: "
                     "each phase needs a memory sample (the back phase lasts two halves)")
    work = Path(tempfile.mkdtemp(prefix="soak-adv-"))
    rng = np.random.default_rng(0)
    ship = np.zeros((3, 64, 64), np.uint8)
    ship[:, 10:20, 5:45] = 255
    noise = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(16)]
    samples: list[dict[str, Any]] = []
    phase = {"name": "steady"}
    counters = {"sent": 0, "noise_sent": 0}
    noise_ids: set[str] = set()   # ids of the noise tiles built (the generator thread adds, before sending)
    stop = threading.Event()
    proc: RuntimeProcess | None = None
    streamer: Streamer | None = None
    reader: ResultCollector | None = None
    received: set[str] = set()
    not_ok: dict[str, str] = {}   # tile_id -> the reason of a result that was not "ok"
    done: set[str] = set()
    sent_ids: set[str] = set()
    error: str | None = None
    code: int | None = None
    bound: int | None = None
    steady_rss = flood_rss = None
    accepted_before_close = 0
    control: ControlClient | None = None
    peak: int | None = None  # the runtime's tiles_inside_peak, read last before it is stopped

    def tiles() -> Iterator[Tile]:
        """Ship tiles, or noise tiles while the phase is the flood, until stopped."""
        while not stop.is_set():
            i = counters["sent"]
            flood = phase["name"] == "flood"
            tile_id = f"soak/{i}"
            if flood:
                noise_ids.add(tile_id)
            counters["sent"] += 1
            yield Tile("soak", tile_id, i, noise[i % 16] if flood else ship, Affine(3, 0, 5e5, 0, -3, 4.2e6),
                       "EPSG:32631", (0, 0, 64, 64))

    def take(results: list[tuple[float, dict[str, Any], Any]]) -> None:
        """Note the tiles answered, and those answered other than "ok": a runtime that rejected every
        noise tile (an internal_error in vectorisation) still answered each one, and passed."""
        for _, r, _ in list(results):
            received.add(r["tile_id"])
            if r.get("status") != "ok":
                not_ok.setdefault(r["tile_id"], str(r.get("reason")))

    def noise_accepted() -> int:
        """Noise tiles the runtime has acknowledged as accepted (the sender thread fills the log)."""
        assert streamer is not None
        # dict.copy(), not list(acks.items()): that makes a tuple per item, and a garbage collection
        # it sets off can run Python code and let the sender thread add an ack mid-iteration
        # ("dictionary changed size during iteration", seen once under load); the copy runs no Python
        acks = streamer.log.acks.copy()
        return sum(1 for t, a in acks.items() if t in noise_ids and a.get("status") == "accepted")

    try:
        if args.model is None:
            args.model = work / "model"
            make_brightness_bundle(args.model)
        proc = RuntimeProcess("CPU", work / "runtime.log", 60, ground_ack=True)
        control = ControlClient(proc.endpoints["control"])
        control.load_model(args.model)
        bound = control.status()["counters"]["queue_depth"]["max_tiles_inside"]
        streamer = Streamer(proc.endpoints["tiles"], window=32, ack_timeout_s=3600, resend_after_s=3600)

        def send(tile: Tile, want_mask: bool) -> None:
            """Send one tile, counting the noise tiles that really left the sender."""
            assert streamer is not None
            streamer.send_frames(tile.tile_id, tile.frames(want_mask, streamer.want_done))
            if tile.tile_id in noise_ids:
                counters["noise_sent"] += 1

        sender = threading.Thread(target=streamer.stream, args=(tiles(),), kwargs={"send": send}, daemon=True)
        reader = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        start = time.monotonic()
        sender.start()

        def sample_until(t_end: float) -> None:
            while time.monotonic() < t_end:
                time.sleep(max(0.01, min(args.sample_s, t_end - time.monotonic())))  # the last at the phase's end
                assert proc is not None and control is not None
                if proc.proc.poll() is not None:
                    raise RuntimeError(f"runtime exited with code {proc.proc.returncode} in phase {phase['name']}")
                status = control.status()
                samples.append({"t_s": round(time.monotonic() - start, 1), "phase": phase["name"],
                                "rss_mb": round(rss_mb(proc.proc.pid), 1), "sent": counters["sent"],
                                "noise_sent": counters["noise_sent"], "noise_accepted": noise_accepted(),
                                "accepted": status["counters"]["tiles_accepted"],
                                "awaiting_ground": status["delivery"]["awaiting_ground"],
                                "inside": status["counters"]["queue_depth"]["tiles_inside"],
                                "inside_peak": status["counters"]["queue_depth"]["tiles_inside_peak"]})
                print(json.dumps(samples[-1]), flush=True)

        sample_until(start + args.phase_s)
        steady_rss = samples[-1]["rss_mb"]
        # The flood: noise first, with the reader still there, so that the runtime (full of steady
        # tiles) drains them and takes noise; the reader goes only once noise fills the bound.
        phase["name"] = "flood"
        deadline = time.monotonic() + max(60.0, args.phase_s)
        while noise_accepted() < bound and time.monotonic() < deadline and sender.is_alive():
            time.sleep(0.05)
        accepted_before_close = noise_accepted()
        reader.close()  # no reader from here
        take(reader.results)
        print(json.dumps({"reader_closed_after_noise_accepted": accepted_before_close}), flush=True)
        sample_until(time.monotonic() + args.phase_s)
        flood_rss = max(s["rss_mb"] for s in samples if s["phase"] == "flood")
        phase["name"] = "back"
        reader = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        sample_until(time.monotonic() + args.phase_s / 2)
        reader.close()  # a ground restart mid-stream
        take(reader.results)
        reader = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        sample_until(time.monotonic() + args.phase_s / 2)
        stop.set()
        sender.join(300)
        sent_ids = {f"soak/{i}" for i in range(counters["sent"])}
        deadline = time.monotonic() + 120
        while not sent_ids <= received | {r["tile_id"] for _, r, _ in reader.results} and time.monotonic() < deadline:
            time.sleep(0.2)
        reader.close()
        take(reader.results)
        done = set(streamer.log.done)
        streamer.close()
    except Exception as exc:  # noqa: BLE001 - report what was measured, with the error
        error = f"{type(exc).__name__}: {exc}"
        print(f"adversarial soak stopped early: {error}", file=sys.stderr)
        stop.set()
        sent_ids = sent_ids or {f"soak/{i}" for i in range(counters["sent"])}
        if reader is not None:
            take(reader.results)
    finally:
        if proc is not None:
            peak = last_peak(proc, control, samples)
            code = proc.close()
    summary: dict[str, Any] = {
        "phase_s": args.phase_s, "tiles_sent": len(sent_ids), "results_received": len(received & sent_ids),
        "reported_done": len(done & sent_ids), "tiles_lost": len(sent_ids - received),
        "not_done": len(sent_ids - done),
        "rejected": len(set(not_ok) & sent_ids), "rejected_reasons": dict(Counter(not_ok.values())),
        "noise_tiles_sent": counters["noise_sent"],
        "noise_tiles_accepted": noise_accepted() if streamer is not None else 0,
        "noise_accepted_before_reader_closed": accepted_before_close, "max_tiles_inside": bound,
        "tiles_inside_peak": peak,
        "max_inside_seen": max((s["inside"] for s in samples), default=None),
        "max_inside_seen_flood": max((s["inside"] for s in samples if s["phase"] == "flood"), default=None),
        "rss_steady_mb": steady_rss, "rss_flood_max_mb": flood_rss, "rss_bound_mb": args.rss_bound_mb,
        "runtime_exit_code": code, "error": error, "samples": samples,
    }
    why = failures(summary)
    summary["failures"] = why
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=1))
    return finish(summary, args.out, work, f"work folder kept: {work} (runtime log: {work / 'runtime.log'})")


if __name__ == "__main__":
    raise SystemExit(main())
