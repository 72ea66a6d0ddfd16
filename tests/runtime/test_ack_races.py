"""What a tile's acknowledgements may and may not release, found by a review of 2026-12-04 (each
test here failed before).

A ground's ack of a corrupted copy's rejection must not deliver the accepted tile: the copy (the
same header, other pixels) is refused with ``bad_checksum``, and its rejection carries the accepted
tile's ``[scene_id, tile_id, checksum]``. hil's collector acknowledged it like any result, and the
runtime took that ack for the accepted tile's: its sender heard ``done`` (ok) though no ground had
its result, which was then never sent again. The runtime now marks what it does not hold for the
ground (``"acknowledge": false``) and the collector acknowledges only the rest. And a tile delivered
before the main loop had marked it in flight must stay remembered as done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from affine import Affine

from flightsim.tiles import Tile
from hil.collector import ResultCollector
from runtime import config, protocol
from runtime.settings import Settings
from tests.conftest import runtime_thread


def _messages(sock: zmq.Socket, n: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    out = []
    while len(out) < n and sock.poll(int(timeout_s * 1000)):
        out.append(protocol.loads(sock.recv()))
    return out


def test_the_ack_of_a_corrupted_copys_rejection_does_not_deliver_the_tile(
        brightness_bundle: Path, tmp_path: Path) -> None:
    endpoints = {n: f"ipc://{tmp_path}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    settings = Settings.from_config(config.defaults(), device="CPU", ground_ack_timeout_s=1.0, **endpoints)
    pixels = np.zeros((3, 64, 64), np.uint8)
    pixels[:, 10:20, 5:45] = 255
    frames = Tile("s", "s/0", 0, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631", (0, 0, 64, 64)).frames()
    corrupted = [frames[0], bytes([frames[1][0] ^ 1]) + frames[1][1:]]
    ctx = zmq.Context.instance()
    with runtime_thread(settings, brightness_bundle):
        first_ground = ctx.socket(zmq.PULL)
        first_ground.setsockopt(zmq.LINGER, 0)
        first_ground.connect(endpoints["results"])
        sender = ctx.socket(zmq.DEALER)
        sender.setsockopt(zmq.LINGER, 0)
        sender.connect(endpoints["tiles"])
        collector = None
        try:
            sender.send_multipart(frames)
            assert [m["status"] for m in _messages(sender, 1)] == ["accepted"]
            assert first_ground.poll(10_000)  # the first ground takes the ok result and goes, without acking
            assert protocol.decode_result(first_ground.recv_multipart())[0]["status"] == "ok"
            first_ground.close()
            collector = ResultCollector(endpoints["results"], acks=endpoints["acks"])
            time.sleep(0.2)
            sender.send_multipart(corrupted)
            heard = _messages(sender, 2, timeout_s=3.0)
            assert collector.wait_for(2, 10), [r for _, r, _ in collector.results]
            got = [(r["status"], r.get("reason"), r.get("acknowledge")) for _, r, _ in collector.results]
            heard += _messages(sender, 1, timeout_s=3.0)  # the accepted tile's done, once the ok result is acked
        finally:
            if collector is not None:
                collector.close()
            sender.close()
    assert ("rejected", "bad_checksum", False) in got and ("ok", None, None) in got, got
    assert [(m["type"], m["status"]) for m in heard if m["type"] == "done"] == [("done", "ok")], heard


def test_a_tile_delivered_before_the_main_loop_marks_it_in_flight_stays_done(
        brightness_bundle: Path, tmp_path: Path) -> None:
    """A sender that waives "done": the sender thread remembers the tile as done once the ground acks
    its result. The main loop marked it "in flight" only after start_async returned, and so could
    overwrite "done" for good, and a resend never heard "done" (found by the same review; the main
    loop's pause after submitting is widened here)."""
    endpoints = {n: f"ipc://{tmp_path}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    settings = Settings.from_config(config.defaults(), device="CPU", **endpoints)
    pixels = np.zeros((3, 64, 64), np.uint8)
    pixels[:, 10:20, 5:45] = 255
    tile = Tile("s", "s/0", 0, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631", (0, 0, 64, 64))
    ctx = zmq.Context.instance()
    with runtime_thread(settings, brightness_bundle) as runtime:
        assert runtime.serving is not None
        adapter = runtime.serving.adapter
        submit = adapter.start_async

        def slow_to_return(batch: Any, job: Any) -> None:
            submit(batch, job)
            time.sleep(0.5)  # the result goes out and is acknowledged meanwhile

        adapter.start_async = slow_to_return  # type: ignore[method-assign]
        ground = ResultCollector(endpoints["results"], acks=endpoints["acks"])
        sender = ctx.socket(zmq.DEALER)
        sender.setsockopt(zmq.LINGER, 0)
        sender.connect(endpoints["tiles"])
        try:
            sender.send_multipart(tile.frames(want_done=False))
            assert [m["status"] for m in _messages(sender, 1)] == ["accepted"]
            assert ground.wait_for(1, 5)
            time.sleep(0.3)
            adapter.start_async = submit  # type: ignore[method-assign]
            sender.send_multipart(tile.frames(want_done=True))  # a resend, by a sender that wants "done"
            heard = _messages(sender, 2, timeout_s=3.0)
        finally:
            ground.close()
            sender.close()
    assert [(m["type"], m.get("duplicate")) for m in heard] == [("ack", True), ("done", True)], heard
