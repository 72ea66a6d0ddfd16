"""Review 26: Runtime._answer, shared by the serving loop and the shutdown drain.

Regression tests (they pass on the code under review): during the drain every control message is
answered exactly once, whatever it is (a burst of status requests from several clients, a malformed
command, a refused one, a repeated shutdown), and the tile the drain holds gets exactly one "done",
forwarded once its result is acknowledged; a tile that only arrives during the drain is not read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import zmq
from affine import Affine

from flightsim.tiles import Tile
from runtime import config, protocol
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_status_while_stopping_review24 import GRACE_S, _socket  # the drain's set-up

def _tile(tile_id: str) -> list[bytes]:
    return Tile("s", tile_id, 0, np.zeros((3, 64, 64), dtype=np.uint8), Affine(3, 0, 5e5, 0, -3, 4.2e6),
                "EPSG:32631", (0, 0, 64, 64)).frames()


def _replies(sock: zmq.Socket, n: int, timeout_s: float = 10.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        got.append(protocol.loads(sock.recv_multipart()[-1]))
    return got


def test_every_control_message_in_the_drain_is_answered_once_and_the_held_tile_done_once(
        brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> None:
    cfg = config.defaults()
    cfg["delivery"]["shutdown_grace_s"] = GRACE_S
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle) as runtime:
        sender = _socket(zmq.DEALER, ipc_endpoints["tiles"])
        ground, acks = _socket(zmq.PULL, ipc_endpoints["results"]), _socket(zmq.PUSH, ipc_endpoints["acks"])
        clients = [_socket(zmq.DEALER, ipc_endpoints["control"]) for _ in range(3)]
        try:
            sender.send_multipart(_tile("s/0"))
            assert sender.poll(10_000) and protocol.loads(sender.recv())["status"] == "accepted"
            assert ground.poll(10_000), "no result"
            result = protocol.loads(ground.recv_multipart()[0])
            clients[0].send(json.dumps({"v": 1, "cmd": "shutdown"}).encode())
            assert _replies(clients[0], 1) == [{"v": 1, "ok": True}]
            deadline = time.monotonic() + 10
            while not runtime._stopping and time.monotonic() < deadline:
                time.sleep(0.01)
            for client in clients:  # a burst, all at once, from three clients
                for _ in range(10):
                    client.send(json.dumps({"v": 1, "cmd": "status"}).encode())
                client.send(b"not json")
                client.send(json.dumps({"v": 1, "cmd": "load_model"}).encode())
                client.send(json.dumps({"v": 1, "cmd": "shutdown"}).encode())
            for client in clients:
                replies = _replies(client, 13)
                assert len(replies) == 13 and not client.poll(200), "a command answered twice or not at all"
                assert all(r["state"] == "stopping" for r in replies[:10])
                assert not replies[10]["ok"] and not replies[11]["ok"] and "stopping" in replies[11]["error"]
                assert replies[12] == {"v": 1, "ok": True}
            assert not sender.poll(200), "a 'done' before the ground acknowledged"
            acks.send(protocol.dumps({"v": 1, "ack": [result["scene_id"], result["tile_id"], result["checksum"]]}))
            assert sender.poll(10_000), "the tile held by the drain was never reported done"
            done = protocol.loads(sender.recv())
            assert (done["type"], done["tile_id"], done["status"]) == ("done", "s/0", "ok")
            assert not sender.poll(500), "a second 'done'"
        finally:
            for sock in (sender, ground, acks, *clients):
                sock.close()
