"""A flood with no ground reading results: the runtime stops reading tiles at its bound, memory
stays flat, control still answers, and once a reader connects every accepted tile's result reaches
it (adversarial test, issue 13: memory grew 12 MB/s without bound)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from hil.collector import ResultCollector
from hil.runtime_proc import RuntimeProcess
from runtime.client import ControlClient


#: How long the flood is held with no reader (issue 13: 60 s), and the documented bounds on the
#: runtime's resident memory meanwhile (docs/reliability.md, *Flood and overload*).
HOLD_S = 60.0
GROWTH_BOUND_MB = 100.0   # above the runtime's RSS before the flood
FLAT_BOUND_MB = 5.0       # over the hold, once the tiles inside are vectorised


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_a_flood_without_a_reader_is_bounded_and_loses_nothing(tmp_path: Path, brightness_bundle: Path) -> None:
    proc = RuntimeProcess("CPU", tmp_path / "runtime.log", startup_timeout_s=60)
    control = ControlClient(proc.endpoints["control"])
    try:
        control.load_model(brightness_bundle)
        rng = np.random.default_rng(0)
        noise = [rng.integers(0, 256, (3, 64, 64), dtype=np.uint8) for _ in range(8)]  # many polygons each
        tiles = [Tile("flood", f"flood/{i}", i, noise[i % 8], Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631",
                      (0, 0, 64, 64)) for i in range(200)]
        streamer = Streamer(proc.endpoints["tiles"], window=32, ack_timeout_s=600)
        thread = threading.Thread(target=streamer.stream, args=(tiles,), daemon=True)
        rss_start = _rss_mb(proc.proc.pid)
        thread.start()
        limit = control.status()["counters"]["queue_depth"]["max_tiles_inside"]
        deadline = time.monotonic() + 60
        while control.status()["counters"]["queue_depth"]["tiles_inside"] < limit and time.monotonic() < deadline:
            time.sleep(0.1)
        status = control.status()  # control answers while the tile socket is full
        assert status["counters"]["queue_depth"]["tiles_inside"] == limit
        # The tiles inside are still vectorised (their results fill the outbox, within the bound):
        # memory is judged once that work is done and only waiting for a reader remains.
        while time.monotonic() < deadline + 120:
            depth = control.status()["counters"]["queue_depth"]
            if depth["vectorise"] == 0 and depth["output"] >= limit - 2:
                break
            time.sleep(0.2)
        samples = []
        held_until = time.monotonic() + HOLD_S
        while time.monotonic() < held_until:  # at the bound: nothing more is taken, memory does not grow
            time.sleep(1.0)
            samples.append(_rss_mb(proc.proc.pid))
        accepted = control.status()["counters"]["tiles_accepted"]
        assert accepted <= limit and thread.is_alive()
        assert max(samples) - rss_start < GROWTH_BOUND_MB, (rss_start, samples)
        assert max(samples) - samples[0] < FLAT_BOUND_MB, samples   # flat, not rising
        # A reader connects: everything taken comes out, and the flood goes on to the end.
        collector = ResultCollector(proc.endpoints["results"], acks=proc.endpoints.get("acks"))
        thread.join(300)
        assert not thread.is_alive(), "the stream did not finish once results were read"
        assert collector.wait_for(len(tiles), 120), f"{len(collector.results)} of {len(tiles)}"
        assert {r["tile_id"] for _, r, _ in collector.results} == {t.tile_id for t in tiles}
        collector.close()
        streamer.close()
    finally:
        proc.close()
