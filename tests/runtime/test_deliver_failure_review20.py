"""Review 20: a bug raised while the runtime delivers a tile's result (``Runtime._vectorised``, the vectorise
pool's ``deliver``) rejects that tile as an internal error, and the same worker serves the next tiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import config, protocol
from runtime.client import ControlClient
from runtime.server import Runtime, Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground


def test_a_bug_raised_delivering_a_result_rejects_the_tile_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """The exception ended the worker thread: the tile was never answered, nor was any later one (with
    one worker), and Health saw nothing until the tile looked stuck for the hang timeout."""
    real_vectorised = Runtime._vectorised
    raised: list[str] = []

    def raises_once_on_tile_1(self: Runtime, item: Any, result: Any) -> None:
        if item[1].header["tile_id"] == "s/1" and not raised:
            raised.append("s/1")
            raise RuntimeError("a bug in delivery")
        real_vectorised(self, item, result)

    monkeypatch.setattr(Runtime, "_vectorised", raises_once_on_tile_1)
    cfg = config.defaults()
    cfg["vectorize"] = {**cfg["vectorize"], "workers": 1, "batch": 1}
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 5.0, "watchdog_file": ""}
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    tiles = [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(3)]
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
        events = zmq.Context.instance().socket(zmq.SUB)
        events.setsockopt(zmq.SUBSCRIBE, b"event")
        events.connect(ipc_endpoints["telemetry"])
        ground = Ground(ipc_endpoints)
        control = ControlClient(ipc_endpoints["control"])
        try:
            Streamer(ipc_endpoints["tiles"]).stream(tiles)
            got = {r["tile_id"]: r for r in ground.results(3, timeout_s=4.0)}  # within one hang timeout
            status = control.status()
            bugs = []
            while events.poll(500):
                event = protocol.loads(events.recv_multipart()[1])
                if event["event"] == "internal_error":
                    bugs.append(event)
        finally:
            control.close()
            events.close()
    assert raised == ["s/1"]
    assert got["s/1"]["status"] == "rejected", got["s/1"]
    assert got["s/1"]["reason"] == protocol.Reason.INFERENCE_FAILED.value
    assert "delivering its result: internal error RuntimeError('a bug in delivery')" in got["s/1"]["detail"]
    assert got["s/0"]["status"] == got["s/2"]["status"] == "ok"
    counters = status["counters"]
    assert counters["internal_errors"] == 1
    assert counters["tiles_ok"] == 2 and counters["tiles_rejected"] == 1, "one tile counted twice"
    assert status["health"]["stages"]["vectorise-0"]["restarts"] == 0
    assert [(e["handler"], e["tile_id"]) for e in bugs] == [("_vectorised", "s/1")], bugs
