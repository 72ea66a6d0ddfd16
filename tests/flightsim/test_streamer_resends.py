"""The resending sender (flightsim.streamer.Streamer with resend_after_s): when it resends, and what
ends a tile. Found by a review of 2026-12-04, each test failing before: a tile lost in transit was
resent only when the acks fell silent (in practice at the end of the stream), and the rejection of a
corrupted resend of a tile already accepted ended that tile, whose result the ground might never get.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from hil.collector import ResultCollector
from runtime import config, protocol
from runtime.settings import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import _tile


@pytest.fixture()
def steady_runtime(tmp_path: Path) -> Iterator[tuple[str, dict[str, float]]]:
    """A stand-in runtime that takes one tile every 0.1 s, acknowledges it and says it is done; the
    dict says when each tile first arrived (seconds from the start)."""
    endpoint = f"ipc://{tmp_path}/tiles"
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    arrivals: dict[str, float] = {}
    stop, start = threading.Event(), time.monotonic()

    def serve() -> None:
        while not stop.is_set():
            if not sock.poll(20):
                continue
            identity, header, *_ = sock.recv_multipart()
            head = protocol.loads(header)
            arrivals.setdefault(head["tile_id"], time.monotonic() - start)
            sock.send_multipart([identity, protocol.encode_ack(head, True)])
            sock.send_multipart([identity, protocol.encode_done({**protocol.tile_ids(head), "status": "ok"})])
            time.sleep(0.1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield endpoint, arrivals
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_a_tile_lost_in_transit_is_resent_while_the_stream_goes_on(
        steady_runtime: tuple[str, dict[str, float]]) -> None:
    endpoint, arrivals = steady_runtime
    tiles = [Tile("s", f"s/{i}", i, np.full((3, 8, 8), i, np.uint8), Affine.identity(), None, (0, 0, 8, 8))
             for i in range(40)]
    streamer = Streamer(endpoint, window=4, resend_after_s=1.0, ack_timeout_s=30)
    try:
        def lose_the_first(tile: Tile, mask: bool) -> None:
            streamer.send_frames(tile.tile_id, tile.frames(mask), lost_in_transit=tile.tile_id == "s/0")

        log = streamer.stream(tiles, send=lose_the_first)
    finally:
        streamer.close()
    assert log.done == {t.tile_id for t in tiles}
    last_other = max(t for tile_id, t in arrivals.items() if tile_id != "s/0")
    # resent about resend_after_s after it left, not after the other 39 (about 4 s of stream)
    assert arrivals["s/0"] < 2.5 < last_other, arrivals


class CorruptsResends(Streamer):
    """A link that flips a bit of the pixels of every message but a tile's first: its resends."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.seen: set[bytes] = set()

    def _send(self, frames: list[bytes]) -> None:
        header = bytes(frames[0])
        if header in self.seen:
            frames = [frames[0], bytes([bytes(frames[1])[0] ^ 1]) + bytes(frames[1])[1:]]
        self.seen.add(header)
        super()._send(frames)


def test_a_rejected_resend_of_an_accepted_tile_does_not_end_it(brightness_bundle: Path, tmp_path: Path) -> None:
    """The tile is accepted, its result held for a ground that has not acknowledged it; a resend
    arrives corrupted and is refused (bad_checksum). The sender must keep the tile (its accepted
    ack, its wait for "done"), not take it as rejected and forget it."""
    endpoints = {n: f"ipc://{tmp_path}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    settings = Settings.from_config(config.defaults(), device="CPU", **endpoints)
    ground = zmq.Context.instance().socket(zmq.PULL)  # reads, does not acknowledge (yet)
    ground.setsockopt(zmq.LINGER, 0)
    with runtime_thread(settings, brightness_bundle):
        ground.connect(endpoints["results"])
        streamer = CorruptsResends(endpoints["tiles"], window=4, resend_after_s=0.3, ack_timeout_s=2.0)
        try:
            streamer.send_frames("scene/1", _tile(1).frames())
            deadline = time.monotonic() + 5
            while "scene/1" not in streamer.log.rejected_copies and time.monotonic() < deadline:
                try:
                    streamer._wait_ack(0.5)
                except Exception:  # noqa: BLE001 - no progress yet: keep polling until the deadline
                    pass
            assert streamer.log.rejected_copies["scene/1"]["reason"] == "bad_checksum"
            assert streamer.log.acks["scene/1"]["status"] == "accepted"
            assert "scene/1" in streamer._unfinished and "scene/1" not in streamer.log.done
            result = protocol.decode_result(ground.recv_multipart())[0]
            while result["status"] != "ok":  # the corrupted copy's rejection may come on the same socket
                result = protocol.decode_result(ground.recv_multipart())[0]
            acks = zmq.Context.instance().socket(zmq.PUSH)
            acks.setsockopt(zmq.LINGER, 1000)
            acks.connect(endpoints["acks"])
            acks.send(protocol.dumps({"v": protocol.PROTOCOL_VERSION,
                                      "ack": [result["scene_id"], result["tile_id"], result["checksum"]]}))
            streamer.drain()  # the accepted copy's "done" ends it now
            acks.close()
        finally:
            streamer.close()
            ground.close()
    assert "scene/1" in streamer.log.done


def test_a_tile_the_runtime_can_only_refuse_anonymously_ends_the_drain_with_a_link_error(
        running_runtime: Any) -> None:
    """A tile id longer than the runtime echoes (protocol.MAX_ID_CHARS) is refused with an ack that
    names no tile. Each resend of it was refused the same way and each such ack counted as progress:
    the drain resent it every resend_after_s for ever and never raised. It must end, naming it."""
    tile = Tile("s", "x" * (protocol.MAX_ID_CHARS + 1), 0, np.zeros((3, 64, 64), np.uint8),
                Affine(1, 0, 0, 0, -1, 0), None, (0, 0, 64, 64))
    # A ground that takes every result: else the rejections wait for one, max_tiles_inside fills and the
    # runtime stops acknowledging, which ends the drain for another reason.
    ground = ResultCollector(running_runtime.endpoints["results"], acks=running_runtime.endpoints["acks"])
    streamer = Streamer(running_runtime.endpoints["tiles"], window=4, resend_after_s=0.2, ack_timeout_s=1.5)
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            streamer.stream([tile])
            out["end"] = "returned"
        except Exception as exc:  # noqa: BLE001 - the test looks at what it was
            out["end"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(15)
    try:
        assert not thread.is_alive(), f"the drain still resends it: {streamer.log.resends}"
        assert type(out["end"]).__name__ == "LinkError" and "1 tiles unfinished" in str(out["end"]), out
        assert streamer.log.anonymous_acks and streamer.log.anonymous_acks[0]["reason"] == "bad_header"
    finally:
        running_runtime.stop()  # the runtime's own teardown, so the thread's socket is not closed under it
        thread.join(5)
        streamer.close()
        ground.close()
