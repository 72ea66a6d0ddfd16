"""Review 16: Health against back-pressure from the ground."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import zmq
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import config, protocol
from runtime.client import ControlClient
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground


def _tiles(n: int) -> list[Tile]:
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    return [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(n)]


def test_results_waiting_for_a_ground_to_connect_do_not_starve_the_watchdog(
    brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """No ground connected on the results socket (between two passes, a ground collector
    restarting) is back-pressure (docs/protocol.md, "Overload policy": the sender waits, nothing is
    dropped), not a hang: the output stage waited inside its heartbeat, so after hang_timeout_s
    Health reported `output` hung (stage_hung, WARNING_HI) and stopped feeding the watchdog, and a
    supervisor killed a healthy payload, again after every restart, for as long as no ground came."""
    cfg = config.defaults()
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 0.5, "watchdog_file": ""}
    events = zmq.Context.instance().socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"event")
    events.setsockopt(zmq.LINGER, 0)
    events.connect(ipc_endpoints["telemetry"])
    try:
        with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
            log = Streamer(ipc_endpoints["tiles"]).stream(_tiles(3))
            assert [a["status"] for a in log.acks.values()] == ["accepted"] * 3
            time.sleep(2.0)  # four hang timeouts with the results waiting for a ground
            status = ControlClient(ipc_endpoints["control"]).status()
            said = []
            while events.poll(200):
                said.append(protocol.loads(events.recv_multipart()[1]))
            assert [e for e in said if e["event"] == "stage_hung"] == []
            assert status["health"]["stages"]["output"]["hung"] is False
            # fed every 0.1 s; starved, it would be 1.5 s old (hung at 0.5 s): 1 s leaves a loaded host room
            assert time.time() - status["health"]["watchdog_fed_at"] < 1.0, "the watchdog starved"
            got = Ground(ipc_endpoints).results(3, timeout_s=20)  # the ground comes: all delivered
            assert sorted(r["status"] for r in got) == ["ok"] * 3
    finally:
        events.close()
