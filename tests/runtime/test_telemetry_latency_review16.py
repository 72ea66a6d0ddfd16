"""Review 16: the latency percentiles in status are of the tiles served ok, one sample per tile."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

import runtime.results as results_module
from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import config
from runtime.client import ControlClient
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground


def _tiles(n: int) -> list[Tile]:
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    return [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(n)]


def test_a_restarted_worker_s_discarded_result_adds_no_latency_sample(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """A vectorise worker stuck on a tile is restarted and a fresh worker serves the tile. When the
    stuck one finishes (much later) its result is discarded: its latency (the whole hang) must not
    enter latency_ms_p50/p99, which are "of the last 1,000 tiles served ok" (docs/protocol.md). It
    did: _post_process recorded every sample, delivered or not, so one tile counted twice and the
    hang's length became the payload's p99."""
    real = results_module.vectorize
    hang, release = threading.Event(), threading.Event()
    stuck: list[threading.Thread] = []

    def hangs_once(*args: object, **kwargs: object) -> list:
        if not hang.is_set():
            hang.set()
            stuck.append(threading.current_thread())
            release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(results_module, "vectorize", hangs_once)
    cfg = config.defaults()
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 0.5, "watchdog_file": ""}
    cfg["vectorize"] = {**cfg["vectorize"], "batch": 1}
    try:
        with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
            ground = Ground(ipc_endpoints)
            Streamer(ipc_endpoints["tiles"]).stream(_tiles(3))
            got = ground.results(3, timeout_s=20)
            assert sorted(r["status"] for r in got) == ["ok"] * 3
            served_ms = max(r["timings_ms"]["total"] for r in got)  # the slowest tile the ground got
            control = ControlClient(ipc_endpoints["control"])
            assert control.status()["health"]["stages"]["vectorise-0"]["restarts"] == 1
            time.sleep(3.0)  # the stuck worker stays stuck well past the fresh one's result
            release.set()
            stuck[0].join(30)
            assert not stuck[0].is_alive()
            counters = control.status()["counters"]
        assert counters["tiles_ok"] == 3
        # three samples, the largest the slowest tile served: not the discarded one's 3.5 s and more
        assert counters["latency_ms_p99"] <= served_ms + 1.0, (counters["latency_ms_p99"], served_ms)
    finally:
        release.set()
