"""Review 24: the last resort of post-processing, seen from the tile's sender and from the counters.

* A tile whose result and then whose rejection both failed to be handed on (the same bug twice) was
  counted and said as two internal errors; it is one tile, met by one bug: one.
* A tile no rejection could be made for was released with no "done": a sender waiting for it (a
  resending one, or one draining) waited for ever. It now hears "done", rejected.

The runtime is the real one (sockets, device, vectorise pool); the bugs are injected into its own
callbacks, as in tests/runtime/test_post_processing_review21.py.
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
from runtime.server import Runtime
from runtime.vectorise_pool import DeliverFailed
from tests.conftest import drained_events, event_subscriber
from tests.runtime.test_delivery import _done
from tests.runtime.test_post_processing_review21 import _counted_once, _raises_once, _runtime
from tests.runtime.test_server import Ground


def _is_s1(self: Runtime, item: Any, *rest: Any) -> bool:
    return bool(item[1].header["tile_id"] == "s/1")


def _three_tiles() -> list[Tile]:
    """Tiles s/0, s/1 and s/2 (one worker takes them one at a time: which one meets a fault is known)."""
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    return [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(3)]


def test_a_tile_whose_rejection_fails_to_deliver_too_is_one_internal_error(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """``_vectorised`` raises on s/1's result, then again on its rejection: ``_post_processing_failed``
    counted an internal error, and ``_post_processing_lost`` a second one for the same tile."""
    once = _raises_once(Runtime._vectorised, _is_s1, "the same bug again")
    monkeypatch.setattr(Runtime, "_vectorised", _raises_once(once, _is_s1, "a bug in delivery"))
    with _runtime(brightness_bundle, ipc_endpoints) as runtime, event_subscriber(ipc_endpoints["telemetry"]) as events:
        ground = Ground(runtime.endpoints)
        Streamer(runtime.endpoints["tiles"]).stream(_three_tiles())
        got = {r["tile_id"]: r for r in ground.results(3, timeout_s=4.0)}
        counters = _counted_once(runtime)
        said = drained_events(events, "internal_error")
    assert counters["internal_errors"] == 1, counters
    assert [e["tile_id"] for e in said] == ["s/1"], said
    assert got["s/1"]["status"] == "rejected" and got["s/0"]["status"] == got["s/2"]["status"] == "ok", got
    assert counters["tiles_ok"] == 2 and counters["tiles_rejected"] == 1, counters


def test_a_tile_rejected_with_no_result_still_tells_its_sender_done(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """``_vectorised`` raises on s/1, so does ``_post_processing_failed``, and the last resort cannot make
    s/1's rejection either: s/1 leaves with no result, and its sender is told "done" (it was not)."""
    monkeypatch.setattr(Runtime, "_vectorised", _raises_once(Runtime._vectorised, _is_s1, "a bug in delivery"))
    monkeypatch.setattr(Runtime, "_post_processing_failed", _raises_once(
        Runtime._post_processing_failed, lambda self, item, exc: isinstance(exc, DeliverFailed), "a bug in failed"))
    lost = Runtime._lost

    def no_rejection_for_s1(self: Runtime, job: Any, detail: str) -> tuple[list[bytes], str]:
        if job.header["tile_id"] == "s/1":
            raise RuntimeError("a bug making the rejection")
        return lost(self, job, detail)

    monkeypatch.setattr(Runtime, "_lost", no_rejection_for_s1)
    with _runtime(brightness_bundle, ipc_endpoints) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"])
        try:
            log = streamer.stream(_three_tiles())
            assert {a["status"] for a in log.acks.values()} == {"accepted"}, log.acks
            got = {r["tile_id"]: r for r in ground.results(2, timeout_s=4.0)}
            done = set(_done(streamer, 3))
            counters = _counted_once(runtime)
        finally:
            streamer.close()
        ack, told = _resend(runtime.endpoints["tiles"], _three_tiles()[1])
    assert done == {"s/0", "s/1", "s/2"}, done
    assert set(got) == {"s/0", "s/2"} and not ground.sock.poll(300), got  # s/1 has no result to send
    assert counters["tiles_rejected"] == 1 and counters["internal_errors"] == 1, counters
    # A resend of s/1 is not run again: the tile is remembered as done, and its "done" says rejected.
    assert ack["status"] == "accepted" and ack.get("duplicate") is True, ack
    assert (told["type"], told["status"], told["reason"]) == ("done", "rejected", "inference_failed"), told


def _resend(endpoint: str, tile: Tile) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ack and the "done" the runtime answers a resend of ``tile`` with (raw: the streamer keeps
    neither message)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(tile.frames())
        answers = []
        for _ in range(2):
            assert sock.poll(10_000), f"answers so far: {answers}"
            answers.append(protocol.loads(sock.recv()))
    finally:
        sock.close()
    return answers[0], answers[1]
