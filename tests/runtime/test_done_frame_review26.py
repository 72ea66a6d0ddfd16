"""Review 26: a tile whose "done" cannot be made.

``Runtime._vectorised`` makes the tile's "done" before anything else. When that raised (a bug in
making it, or ids its encoder cannot take), the vectorise pool answered the tile as one whose
delivery failed: its ok result, vessels and all, was thrown away and replaced by a rejection
(``inference_failed``), which ``_vectorised`` then raised on again, so the last resort sent it. The
tile was released and counted once, but as rejected, and the ground lost a good result for a
message only the tile's sender reads. A resend of that tile (its sender was told nothing, so it
resends) met the same failure in ``_duplicate``, after the tile had been released for it: the
tile-socket loop released it a second time (``tiles_inside`` went to -1, so the runtime let one
tile more inside than ``max_tiles_inside`` for the rest of its life), and answered the one copy
twice, "accepted" then "rejected".

Now the result goes out as made and the tile is counted with its own outcome; the bug is counted
and said once for the tile (``internal_error``). Its sender cannot be told (there is no "done" to
send), but the tile is remembered done, so a resend is acknowledged once as a duplicate, released
once, and not run again.

The runtime is the real one (sockets, OpenVINO model, vectorise pool); the fault is injected into
the encoder of the "done" for one tile, as the review 21 and 24 tests inject theirs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import protocol
from tests.conftest import drained_events, event_subscriber
from tests.runtime.test_delivery import _done
from tests.runtime.test_post_processing_review21 import _counted_once, _runtime, _until
from tests.runtime.test_server import Ground

#: The tile whose "done" cannot be made.
BROKEN = "s/1"


def _three_tiles() -> list[Tile]:
    """Tiles s/0, s/1 and s/2, each with one bright vessel (an ok result has something to lose)."""
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    return [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(3)]


def _no_done_for_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    """``protocol.encode_done`` raises for every "done" of :data:`BROKEN`, as an encoder that cannot
    take its ids would (every "done" of it, not only the first: the same ids fail every time)."""
    encode_done = protocol.encode_done

    def failing(result: dict[str, Any]) -> bytes:
        if result.get("tile_id") == BROKEN:
            raise UnicodeEncodeError("utf-8", BROKEN, 0, 1, "injected: ids the encoder cannot take")
        return encode_done(result)

    monkeypatch.setattr(protocol, "encode_done", failing)


def _messages(sock: zmq.Socket, quiet_ms: int = 1000) -> list[dict[str, Any]]:
    """Every message ``sock`` receives until it has been quiet for ``quiet_ms``."""
    out = []
    while sock.poll(quiet_ms):
        out.append(protocol.loads(sock.recv()))
    return out


def test_a_tile_whose_done_cannot_be_made_keeps_its_result_and_is_counted_once(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """s/1's "done" cannot be made: its result still reaches the ground ok (it was replaced by a
    rejection), the tile is counted ok once with one internal error, released, and remembered done;
    its sender hears no "done" for it (there is none to send) and the others' as ever."""
    _no_done_for_broken(monkeypatch)
    with _runtime(brightness_bundle, ipc_endpoints) as runtime, \
            event_subscriber(ipc_endpoints["telemetry"]) as events:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"])
        try:
            log = streamer.stream(_three_tiles())
            assert {a["status"] for a in log.acks.values()} == {"accepted"}, log.acks
            got = {r["tile_id"]: r for r in ground.results(3, timeout_s=10.0)}
            done = set(_done(streamer, 2))
            counters = _counted_once(runtime)
        finally:
            streamer.close()
        said = drained_events(events, "internal_error")
    assert {t: r["status"] for t, r in got.items()} == {"s/0": "ok", "s/1": "ok", "s/2": "ok"}, got
    assert len(got[BROKEN]["detections"]["features"]) == len(got["s/0"]["detections"]["features"]) == 1, got[BROKEN]
    assert done == {"s/0", "s/2"}, done
    assert counters["tiles_ok"] == 3 and counters["tiles_rejected"] == 0, counters
    assert counters["internal_errors"] == 1, counters
    assert [e["tile_id"] for e in said] == [BROKEN], said


def test_a_resend_of_a_tile_whose_done_cannot_be_made_is_one_duplicate_released_once(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """Its sender, told nothing, resends s/1: the copy is acknowledged once as a duplicate (not run
    again, nothing sent to the ground), and the tile count inside goes back to 0, not -1. Before:
    "accepted" (duplicate), then "rejected" (internal_error) for the same copy, a rejection result
    to the ground, and the copy released twice."""
    _no_done_for_broken(monkeypatch)
    with _runtime(brightness_bundle, ipc_endpoints) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"])
        try:
            streamer.stream(_three_tiles())
            ground.results(3, timeout_s=10.0)
            before = _counted_once(runtime)
        finally:
            streamer.close()
        sender = zmq.Context.instance().socket(zmq.DEALER)
        sender.setsockopt(zmq.LINGER, 0)
        sender.connect(runtime.endpoints["tiles"])
        try:
            sender.send_multipart(_three_tiles()[1].frames())
            answers = _messages(sender)
        finally:
            sender.close()
        assert _until(lambda: runtime.status()["counters"]["duplicates"] == 1, 5.0)
        after = runtime.status()["counters"]
        to_ground = ground.sock.poll(300)
    assert [(a["type"], a["status"], a.get("duplicate")) for a in answers] == [("ack", "accepted", True)], answers
    assert after["queue_depth"]["tiles_inside"] == 0, after["queue_depth"]
    assert not to_ground, "the resend of a tile already done sent something to the ground"
    assert after["tiles_accepted"] == before["tiles_accepted"] == 3, after  # not run again
    assert after["tiles_ok"] == 3 and after["tiles_rejected"] == 0, after
