"""Delivery under a ground that stops reading: the sender keeps taking acks, and a result given up
on at shutdown is counted and reported once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from runtime import protocol
from runtime.client import ControlClient
from runtime.delivery import ResultSender
from runtime.server import Runtime

SMALL_BUF = 64 * 1024  # small kernel buffers, so that a ground that stops reading fills them fast


@dataclass
class Rig:
    sender: ResultSender
    ground: zmq.Socket   # reads results (until it stops)
    acks: zmq.Socket     # the ground's acknowledgements
    notify: zmq.Socket   # the main loop's end of the "done" channel
    counts: dict[str, int] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    released: list[int] = field(default_factory=lambda: [0])


def _result(i: int) -> list[bytes]:
    head = protocol.dumps({"v": 1, "type": "result", "scene_id": "s", "tile_id": str(i), "seq": i, "status": "ok"})
    return [head + b" " * 1_000_000]


def _key(i: int) -> tuple[str, str, str]:
    return ("s", str(i), "crc32:0")


@pytest.fixture
def stalled_ground() -> Iterator[Rig]:
    """A sender with three results out, read once by a ground that then stops reading (never acks)."""
    ctx = zmq.Context()
    results = ctx.socket(zmq.PUSH)
    for opt, value in ((zmq.SNDHWM, 1), (zmq.SNDBUF, SMALL_BUF), (zmq.LINGER, 0)):
        results.setsockopt(opt, value)
    port = results.bind_to_random_port("tcp://127.0.0.1")
    acks_in = ctx.socket(zmq.PULL)
    acks_in.setsockopt(zmq.LINGER, 0)
    aport = acks_in.bind_to_random_port("tcp://127.0.0.1")
    notify = ctx.socket(zmq.PAIR)
    notify.setsockopt(zmq.LINGER, 0)
    notify.bind("inproc://review-notify")
    ground = ctx.socket(zmq.PULL)
    for opt, value in ((zmq.RCVHWM, 1), (zmq.RCVBUF, SMALL_BUF), (zmq.LINGER, 0)):
        ground.setsockopt(opt, value)
    ground.connect(f"tcp://127.0.0.1:{port}")
    acks = ctx.socket(zmq.PUSH)
    acks.setsockopt(zmq.LINGER, 0)
    acks.connect(f"tcp://127.0.0.1:{aport}")
    rig = Rig(None, ground, acks, notify)  # type: ignore[arg-type]

    def counted(name: str, n: int = 1) -> None:
        rig.counts[name] = rig.counts.get(name, 0) + n

    def released() -> None:
        rig.released[0] += 1

    rig.sender = ResultSender(ctx, results, acks_in, "inproc://review-notify", 0.2, counted,
                              lambda name, **f: rig.events.append((name, f)), released)
    rig.sender.start()
    for i in range(3):
        rig.sender.put(_result(i), b"id", b"done", _key(i))
    for _ in range(3):
        assert ground.poll(10_000), "the ground never got the first results"
        ground.recv_multipart()
    time.sleep(1.5)  # resends every 0.2 s fill the socket, the kernel buffers and the ground's queue
    try:
        yield rig
    finally:
        rig.sender.stop(0.0)
        for sock in (results, acks_in, notify, ground, acks):
            sock.close()
        ctx.term()


def test_a_ground_that_stops_reading_does_not_stop_the_sender_taking_acks(stalled_ground: Rig) -> None:
    """Resending to a full results socket must not wedge the sender (it would take no ack and send
    no new result while its heartbeat, idle between items, told Health it was fine)."""
    rig = stalled_ground
    rig.acks.send(protocol.dumps({"v": 1, "ack": list(_key(1))}))
    assert rig.notify.poll(10_000), "the sender took no ack: it is stuck resending to a full socket"
    identity, done, *_ = rig.notify.recv_multipart()
    assert (identity, done) == (b"id", b"done") and rig.counts.get("results_acked") == 1
    assert len(rig.sender.awaiting) == 2


def test_results_given_up_at_shutdown_are_counted_and_reported_once(stalled_ground: Rig) -> None:
    rig = stalled_ground
    rig.sender.stop(1.0)
    assert rig.counts.get("results_undeliverable") == 3 and rig.released[0] == 3
    said = [f["detail"] for name, f in rig.events if name == "results_undeliverable"]
    assert len(said) == 1 and "3 results unacknowledged by the ground" in said[0], said


def test_status_publishes_undeliverable_results_and_bad_acks(running_runtime: Runtime) -> None:
    acks = zmq.Context.instance().socket(zmq.PUSH)
    acks.setsockopt(zmq.LINGER, 0)
    acks.connect(running_runtime.endpoints["acks"])
    try:
        acks.send(b'{"v": 1, "ack": "not a key"}')
        client = ControlClient(running_runtime.endpoints["control"])
        deadline = time.monotonic() + 10
        while True:
            delivery = client.status()["delivery"]
            if delivery.get("bad_acks") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert delivery["bad_acks"] == 1 and delivery["results_undeliverable"] == 0
    finally:
        acks.close()


def test_a_shutdown_while_the_ground_acks_thousands_of_results_does_not_hang(
    brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """At shutdown the main loop forwards no "done" until the sender thread has stopped; the ground's
    acks of 2,500 results in the grace period made 2,500 "done"s for the sender to hand it, and the
    inproc pipe between them held 2,000: the sender blocked on it for good, so the runtime never
    stopped and its tile senders heard no "done" at all (a valid [limits] max_tiles_inside of 2,600)."""
    import numpy as np
    from affine import Affine

    from flightsim.tiles import Tile
    from runtime import config
    from runtime.server import Settings

    n = 2500
    cfg = config.defaults()
    cfg["limits"]["max_tiles_inside"] = n + 100
    cfg["delivery"] = {**cfg["delivery"], "ground_ack_timeout_s": 120.0, "shutdown_grace_s": 10.0}
    runtime = Runtime(Settings.from_config(cfg, device="CPU", **ipc_endpoints), model=brightness_bundle)
    serving = threading.Thread(target=runtime.serve, daemon=True)
    serving.start()
    ctx = zmq.Context.instance()
    ground, acks, tiles = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH), ctx.socket(zmq.DEALER)
    for sock, option in ((ground, zmq.RCVHWM), (acks, zmq.SNDHWM), (tiles, zmq.SNDHWM), (tiles, zmq.RCVHWM)):
        sock.setsockopt(option, 0)
        sock.setsockopt(zmq.LINGER, 0)
    ground.connect(ipc_endpoints["results"])
    acks.connect(ipc_endpoints["acks"])
    tiles.connect(ipc_endpoints["tiles"])
    try:
        pixels, transform = np.zeros((3, 64, 64), np.uint8), Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
        for i in range(n):
            tiles.send_multipart(Tile("s", f"s/{i}", i, pixels, transform, "EPSG:32631", (0, 0, 64, 64)).frames())
        keys = []
        for _ in range(n):  # every result out, none acknowledged yet
            assert ground.poll(60_000), f"only {len(keys)} of {n} results arrived"
            result = protocol.decode_result(ground.recv_multipart())[0]
            keys.append([result["scene_id"], result["tile_id"], result["checksum"]])
        assert ControlClient(ipc_endpoints["control"], timeout_s=10).shutdown()["ok"]
        for key in keys:
            acks.send(protocol.dumps({"v": protocol.PROTOCOL_VERSION, "ack": key}))
        serving.join(20)
        assert not serving.is_alive(), "the runtime did not stop: its sender is blocked handing on a \"done\""
        done = 0
        while tiles.poll(500):
            done += protocol.loads(tiles.recv_multipart()[-1]).get("type") == "done"
        assert done == n, f"{done} of {n} tiles were told done"
    finally:
        runtime.stop()
        for sock in (ground, acks, tiles):
            sock.close()
