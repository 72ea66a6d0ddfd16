"""Control is answered while the runtime drains at shutdown.

Review 24: the drain (device requests, post-processing, results waiting up to ``shutdown_grace_s`` for
the ground's acks) ran on the main loop, which then read no control message: a client asking
``status`` meanwhile never heard back. Now ``status`` says ``"state": "stopping"``, ``shutdown`` again
answers ok, any other command gets an error reply saying the runtime is stopping, and the tile held
by the drain is still delivered once the ground acknowledges it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.tiles import Tile
from runtime import config, protocol
from runtime.client import ControlClient, ControlError
from runtime.server import Settings
from tests.conftest import runtime_thread

#: Long enough that the drain is still waiting for the ground's ack when the test asks: the test
#: ends it early by acknowledging.
GRACE_S = 20.0


def _socket(kind: int, endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def test_status_is_answered_during_the_shutdown_drain(brightness_bundle: Path,
                                                      ipc_endpoints: dict[str, str]) -> None:
    cfg = config.defaults()
    cfg["delivery"]["shutdown_grace_s"] = GRACE_S
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
        sender, ground, acks = (_socket(zmq.DEALER, ipc_endpoints["tiles"]),
                                _socket(zmq.PULL, ipc_endpoints["results"]), _socket(zmq.PUSH, ipc_endpoints["acks"]))
        client = ControlClient(ipc_endpoints["control"], timeout_s=5)
        try:
            pixels = np.zeros((3, 64, 64), dtype=np.uint8)
            sender.send_multipart(Tile("s", "s/0", 0, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631",
                                       (0, 0, 64, 64)).frames())
            assert sender.poll(10_000) and protocol.loads(sender.recv())["status"] == "accepted"
            assert ground.poll(10_000), "no result"
            result = protocol.loads(ground.recv_multipart()[0])
            # Unacknowledged, the result holds the drain for GRACE_S.
            assert client.request("shutdown")["ok"]
            started = time.monotonic()
            status = client.status(timeout_s=5)  # before the fix: no reply, ControlError
            assert time.monotonic() - started < 5
            assert status["state"] == "stopping" and status["delivery"]["awaiting_ground"] == 1
            with pytest.raises(ControlError, match="the runtime is stopping: load_model is refused"):
                client.load_model(brightness_bundle, timeout_s=5)
            assert client.request("shutdown", timeout_s=5)["ok"]
            assert not sender.poll(200), "a 'done' before the ground acknowledged"
            # Nothing accepted is lost: the ground's ack still releases the tile, during the drain.
            acks.send(protocol.dumps({"v": 1, "ack": [result["scene_id"], result["tile_id"], result["checksum"]]}))
            assert sender.poll(10_000), "the tile held by the drain was never reported done"
            done = protocol.loads(sender.recv())
            assert (done["type"], done["tile_id"], done["status"]) == ("done", "s/0", "ok")
        finally:
            for sock in (sender, ground, acks):
                sock.close()
    assert time.monotonic() - started < GRACE_S, "the drain waited out its grace though the ground had acked"
