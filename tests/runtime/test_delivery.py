"""Delivery: every accepted tile is reported done once its result is out; a resend is never
processed twice."""

from __future__ import annotations

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import protocol
from runtime.client import ControlClient
from runtime.server import Runtime


def _tile(i: int) -> Tile:
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    return Tile("s", f"s/{i}", i, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631", (0, 0, 64, 64))


def _messages(sock: zmq.Socket, n: int) -> list[dict]:
    out = []
    while len(out) < n:
        assert sock.poll(10_000), f"{len(out)} of {n} messages"
        out.append(protocol.loads(sock.recv()))
    return out


def test_done_follows_every_result_and_a_resend_is_not_processed_twice(running_runtime: Runtime) -> None:
    results = zmq.Context.instance().socket(zmq.PULL)
    results.connect(running_runtime.endpoints["results"])
    sender = zmq.Context.instance().socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(running_runtime.endpoints["tiles"])
    frames = _tile(0).frames()
    sender.send_multipart(frames)
    ack, done = _messages(sender, 2)
    assert ack["type"] == "ack" and ack["status"] == "accepted" and not ack["duplicate"]
    assert done["type"] == "done" and done["tile_id"] == "s/0" and done["status"] == "ok"
    assert results.poll(5000)
    assert protocol.decode_result(results.recv_multipart())[0]["tile_id"] == "s/0"
    # The same tile again (a sender that missed the "done" and resends): acknowledged, not processed.
    sender.send_multipart(frames)
    ack, done = _messages(sender, 2)
    assert ack["duplicate"] and done["type"] == "done" and done["duplicate"]
    assert not results.poll(500), "a resent tile was processed twice"
    counters = ControlClient(running_runtime.endpoints["control"]).status()["counters"]
    assert counters["tiles_ok"] == 1 and counters["duplicates"] == 1


def test_streamer_hears_done_for_every_tile(running_runtime: Runtime) -> None:
    results = zmq.Context.instance().socket(zmq.PULL)
    results.connect(running_runtime.endpoints["results"])
    streamer = Streamer(running_runtime.endpoints["tiles"], window=4)
    log = streamer.stream([_tile(i) for i in range(12)])
    for _ in range(12):
        assert results.poll(10_000)
        results.recv_multipart()
    deadline_polls = 50
    while len(log.done) < 12 and deadline_polls:
        if streamer._sock.poll(100):
            streamer._wait_ack(1)
        deadline_polls -= 1
    assert log.done == {f"s/{i}" for i in range(12)}


def test_shutdown_with_no_ground_does_not_hang(brightness_bundle, ipc_endpoints) -> None:
    """A PUSH with no peer blocks; the runtime must still stop, and its sender hears no "done"."""
    import threading

    from runtime import config
    from runtime.server import Settings

    cfg = config.defaults()
    cfg["delivery"]["shutdown_grace_s"] = 0.5
    runtime = Runtime(Settings.from_config(cfg, device="CPU", **ipc_endpoints), model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    sender = zmq.Context.instance().socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(ipc_endpoints["tiles"])
    sender.send_multipart(_tile(0).frames())
    assert _messages(sender, 1)[0]["status"] == "accepted"
    ControlClient(ipc_endpoints["control"]).shutdown()
    thread.join(15)
    assert not thread.is_alive(), "the runtime hung at shutdown with no ground connected"
    assert not sender.poll(200), "a 'done' for a result nobody received"


@pytest.mark.slow
def test_with_ground_ack_a_reader_that_never_reads_gets_no_tile_marked_done(brightness_bundle, tmp_path) -> None:
    """Issue 13's reproduction against a runtime process started with --ground-ack: a results reader
    with a receive HWM of 1 that never reads. No tile is reported done and the runtime stops taking
    tiles at its bound; once that reader is gone and an acknowledging ground connects, every result
    reaches it and every tile is then reported done, each once."""
    import threading
    import time

    from hil.collector import ResultCollector
    from hil.runtime_proc import RuntimeProcess

    proc = RuntimeProcess("CPU", tmp_path / "runtime.log", 60, ground_ack=True)
    control = ControlClient(proc.endpoints["control"])
    lazy = zmq.Context.instance().socket(zmq.PULL)
    lazy.setsockopt(zmq.RCVHWM, 1)
    lazy.setsockopt(zmq.LINGER, 0)
    lazy.connect(proc.endpoints["results"])
    n = 120
    # resend_after_s: the streamer then waits for every "done" (a long one: nothing is resent here)
    streamer = Streamer(proc.endpoints["tiles"], window=16, ack_timeout_s=120, resend_after_s=120.0)
    stream = threading.Thread(target=streamer.stream, args=([_tile(i) for i in range(n)],), daemon=True)
    try:
        control.load_model(brightness_bundle)
        bound = control.status()["counters"]["queue_depth"]["max_tiles_inside"]
        stream.start()
        deadline = time.monotonic() + 30
        while control.status()["counters"]["queue_depth"]["tiles_inside"] < bound and time.monotonic() < deadline:
            time.sleep(0.05)
        status = control.status()
        assert status["counters"]["queue_depth"]["tiles_inside"] == bound, status["counters"]
        time.sleep(1.0)  # the lazy reader still acknowledges nothing
        status = control.status()
        assert not streamer.log.done, "a tile was reported done although no ground has its result"
        assert status["counters"]["tiles_accepted"] == bound  # back-pressure, not memory
        assert status["delivery"]["awaiting_ground"] >= 1
        lazy.close()
        ground = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        stream.join(90)
        assert not stream.is_alive(), "the stream did not finish"
        assert ground.wait_for_tiles({f"s/{i}" for i in range(n)}, 30)
        assert streamer.log.done == {f"s/{i}" for i in range(n)} and not streamer.log.resends
        deadline = time.monotonic() + 10
        while control.status()["delivery"]["awaiting_ground"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert control.status()["delivery"]["awaiting_ground"] == 0
        ground.close()
    finally:
        streamer.close()
        control.close()
        proc.close()
