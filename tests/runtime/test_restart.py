"""A runtime killed mid-stream and started again loses no tile, and the ground sees each once."""

from __future__ import annotations

import pytest

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from hil.collector import ResultCollector
from runtime.client import ControlClient

REPO = Path(__file__).resolve().parents[2]


def resending_stream(endpoints: dict[str, str], n: int) -> tuple[list[Tile], ResultCollector, Streamer, threading.Thread]:
    """``n`` ship tiles streamed in a thread by a sender that resends what has no "done" after 1 s,
    and a ground collecting the results: what a restart must not lose."""
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    tiles = [Tile("s", f"s/{i}", i, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631", (0, 0, 64, 64))
             for i in range(n)]
    collector = ResultCollector(endpoints["results"], acks=endpoints.get("acks"))
    streamer = Streamer(endpoints["tiles"], window=8, resend_after_s=1.0, ack_timeout_s=60)
    stream = threading.Thread(target=streamer.stream, args=(tiles,), daemon=True)
    stream.start()
    return tiles, collector, streamer, stream


def _start(endpoints: dict[str, str], model: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "runtime", "serve", "--device", "CPU", "--model", str(model)]
    for name, endpoint in endpoints.items():
        cmd += [f"--{name}", endpoint]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "ab"), cwd=REPO)
    assert json.loads(proc.stdout.readline())["event"] == "ready"  # type: ignore[union-attr]
    return proc


@pytest.mark.slow
def test_runtime_killed_and_restarted_mid_stream_loses_nothing(brightness_bundle: Path, tmp_path: Path) -> None:
    short = tempfile.mkdtemp(prefix="rs-", dir="/tmp")
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    first = _start(endpoints, brightness_bundle, tmp_path / "runtime.log")
    tiles, collector, streamer, stream = resending_stream(endpoints, 300)
    second = None
    try:
        assert collector.wait_for(50, 30)
        # Frozen first, so that the kill lands with tiles in flight whatever the machine's load:
        # the frozen runtime sends no more "done", and the sender fills its window.
        first.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while not set(list(streamer.log.sent_at)) - streamer.log.done and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(list(streamer.log.sent_at)) - streamer.log.done, "no tile in flight at the kill"
        first.send_signal(signal.SIGKILL)  # a crash: no drain, no goodbye
        first.wait(10)
        killed_at = time.monotonic()
        time.sleep(0.5)  # tiles keep coming while nobody listens
        second = _start(endpoints, brightness_bundle, tmp_path / "runtime.log")
        stream.join(90)
        assert not stream.is_alive(), "the stream did not complete"
        assert collector.wait_for(300, 30)
        time.sleep(0.5)
        ids = [r["tile_id"] for _, r, _ in collector.results]
        assert set(ids) == {t.tile_id for t in tiles}, "a tile was lost"
        assert all(r["status"] == "ok" for _, r, _ in collector.results)
        assert streamer.log.resends, "nothing needed resending: the kill came too late to test anything"
        # At-least-once from the payload, idempotent at the ground: within one runtime a resent tile
        # is never processed twice; across the crash, only a tile whose result left the first
        # runtime before its "done" reached the sender comes twice, and the ground keeps one (hil
        # reports such results as duplicate_results). So every duplicate's first copy predates the kill.
        first_seen: dict[str, float] = {}
        for received_at, r, _ in collector.results:
            if r["tile_id"] in first_seen:
                assert first_seen[r["tile_id"]] <= killed_at, f"{r['tile_id']} processed twice by one runtime"
            else:
                first_seen[r["tile_id"]] = received_at
        counters = ControlClient(endpoints["control"]).status()["counters"]
        assert counters["internal_errors"] == 0
    finally:
        collector.close()
        streamer.close()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
