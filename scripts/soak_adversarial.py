"""An adversarial soak: steady tiles, then a flood of noise tiles with no ground reading, then the
ground back, restarted once more mid-stream; with ground-acknowledged delivery.

    .venv/bin/python scripts/soak_adversarial.py --phase-s 60 --out out/soak-adversarial.json

A real runtime process (``runtime serve --ground-ack``, CPU, the brightness model of the tests or
``--model``). Phases of ``--phase-s`` seconds each:

1. steady: scene tiles, the ground reading and acknowledging;
2. flood: noise tiles (about 150 polygons each, slow to vectorise) and **no reader**: the runtime
   must stop taking tiles at its bound (``max_tiles_inside``) and keep its memory flat;
3. back: a reader connects (every result waiting for it must arrive), the stream goes on, and the
   reader is restarted once halfway (results in its buffers are lost with it, and sent again).

Every ``--sample-s``: the runtime's resident memory. At the end every tile sent must have reached
the ground and be reported done to its sender; exits 1 otherwise, or if memory during the flood
rose more than ``--rss-bound-mb`` above its level at the end of the steady phase.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flightsim.streamer import Streamer  # noqa: E402
from flightsim.tiles import Tile  # noqa: E402
from hil.collector import ResultCollector  # noqa: E402
from hil.runtime_proc import RuntimeProcess  # noqa: E402
from runtime.client import ControlClient  # noqa: E402
from tests.conftest import make_brightness_bundle  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase-s", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--rss-bound-mb", type=float, default=100.0)
    parser.add_argument("--model", type=Path, default=None, help="default: the tests' 64 px brightness model")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-adv-"))
    model = args.model
    if model is None:
        model = work / "model"
        make_brightness_bundle(model)
    rng = np.random.default_rng(0)
    ship = np.zeros((3, 64, 64), np.uint8)
    ship[:, 10:20, 5:45] = 255
    noise = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(16)]
    proc = RuntimeProcess("CPU", work / "runtime.log", 60, ground_ack=True)
    samples: list[dict] = []
    phase = {"name": "steady"}
    counters = {"sent": 0}
    stop = threading.Event()

    def tiles():
        while not stop.is_set():
            i = counters["sent"]
            pixels = noise[i % 16] if phase["name"] == "flood" else ship
            counters["sent"] += 1
            yield Tile("soak", f"soak/{i}", i, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631", (0, 0, 64, 64))

    try:
        ControlClient(proc.endpoints["control"]).load_model(model)
        streamer = Streamer(proc.endpoints["tiles"], window=32, ack_timeout_s=3600, resend_after_s=3600)
        sender = threading.Thread(target=streamer.stream, args=(tiles(),), daemon=True)
        received: set[str] = set()
        reader = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        start = time.monotonic()
        sender.start()

        def sample_until(t_end: float) -> None:
            while time.monotonic() < t_end:
                time.sleep(args.sample_s)
                status = ControlClient(proc.endpoints["control"]).status()
                samples.append({"t_s": round(time.monotonic() - start, 1), "phase": phase["name"],
                                "rss_mb": round(rss_mb(proc.proc.pid), 1), "sent": counters["sent"],
                                "accepted": status["counters"]["tiles_accepted"],
                                "awaiting_ground": status["delivery"]["awaiting_ground"],
                                "inside": status["counters"]["queue_depth"]["tiles_inside"]})
                print(json.dumps(samples[-1]), flush=True)

        sample_until(start + args.phase_s)
        steady_rss = samples[-1]["rss_mb"]
        reader.close()  # no reader from here: the flood
        received |= {r["tile_id"] for _, r, _ in reader.results}
        phase["name"] = "flood"
        sample_until(time.monotonic() + args.phase_s)
        flood_rss = max(s["rss_mb"] for s in samples if s["phase"] == "flood")
        phase["name"] = "back"
        reader = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        sample_until(time.monotonic() + args.phase_s / 2)
        reader.close()  # a ground restart mid-stream
        received |= {r["tile_id"] for _, r, _ in reader.results}
        reader = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        sample_until(time.monotonic() + args.phase_s / 2)
        stop.set()
        sender.join(300)
        sent_ids = {f"soak/{i}" for i in range(counters["sent"])}
        deadline = time.monotonic() + 120
        while not sent_ids <= received | {r["tile_id"] for _, r, _ in reader.results} and time.monotonic() < deadline:
            time.sleep(0.2)
        reader.close()
        received |= {r["tile_id"] for _, r, _ in reader.results}
        done = set(streamer.log.done)
        streamer.close()
    finally:
        proc.close()
    summary = {
        "phase_s": args.phase_s, "tiles_sent": len(sent_ids), "results_received": len(received & sent_ids),
        "reported_done": len(done & sent_ids), "tiles_lost": len(sent_ids - received),
        "not_done": len(sent_ids - done), "rss_steady_mb": steady_rss, "rss_flood_max_mb": flood_rss,
        "rss_bound_mb": args.rss_bound_mb, "samples": samples,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "samples"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))
    ok = summary["tiles_lost"] == 0 and summary["not_done"] == 0 and flood_rss - steady_rss <= args.rss_bound_mb
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
