"""A ground ack over ``[limits] max_header_bytes`` is refused unparsed, as a tile header or a command is.

Review 24: the acks socket parsed whatever arrived, so a 1 MB ack (which parsing JSON may blow up to
23 MB) was read whole, and being otherwise well formed it released its tile. Now it counts in
``bad_acks`` and releases nothing; the valid ack after it still releases the tile.
"""

from __future__ import annotations

import time

import numpy as np
import zmq
from affine import Affine

from flightsim.tiles import Tile
from runtime import protocol
from runtime.client import ControlClient
from runtime.server import Runtime


def _socket(kind: int, endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _bad_acks(client: ControlClient, at_least: int, timeout_s: float = 10.0) -> int:
    """The runtime's ``bad_acks`` once it reaches ``at_least``, or whatever it is after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        bad = int(client.status()["delivery"]["bad_acks"])
        if bad >= at_least or time.monotonic() > deadline:
            return bad
        time.sleep(0.05)


def test_an_oversized_ack_is_refused_unparsed_and_a_valid_one_still_releases_the_tile(
        running_runtime: Runtime) -> None:
    endpoints = running_runtime.endpoints
    limit = running_runtime.settings.max_header_bytes
    sender, ground, acks = (_socket(zmq.DEALER, endpoints["tiles"]), _socket(zmq.PULL, endpoints["results"]),
                            _socket(zmq.PUSH, endpoints["acks"]))
    client = ControlClient(endpoints["control"], timeout_s=10)
    try:
        pixels = np.zeros((3, 64, 64), dtype=np.uint8)
        pixels[:, 10:20, 5:45] = 255
        sender.send_multipart(Tile("s", "s/0", 0, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631",
                                   (0, 0, 64, 64)).frames())
        assert sender.poll(10_000) and protocol.loads(sender.recv())["status"] == "accepted"
        assert ground.poll(10_000), "no result"
        result = protocol.loads(ground.recv_multipart()[0])
        key = [result["scene_id"], result["tile_id"], result["checksum"]]
        # Well formed but for its size: parsed, it would release the tile.
        acks.send(protocol.dumps({"v": 1, "ack": key, "padding": "x" * (limit + 1)}))
        assert _bad_acks(client, 1) == 1, "an ack over max_header_bytes was taken"
        assert not sender.poll(300), "an oversized ack released the tile"
        assert running_runtime.status()["delivery"]["awaiting_ground"] == 1
        acks.send(protocol.dumps({"v": 1, "ack": key}))
        assert sender.poll(10_000), "the valid ack after the oversized one released nothing"
        done = protocol.loads(sender.recv())
        assert (done["type"], done["tile_id"], done["status"]) == ("done", "s/0", "ok")
        delivery = client.status()["delivery"]
        assert delivery["bad_acks"] == 1 and delivery["results_acked"] == 1 and delivery["awaiting_ground"] == 0
    finally:
        for sock in (sender, ground, acks):
            sock.close()
