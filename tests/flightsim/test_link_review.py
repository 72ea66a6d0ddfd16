"""Review of the sender's link handling: a resending drain that never ends, fault specs that parse
but fail later, and the restart accounting (a fake runtime: a ROUTER in a thread, no model)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.faults import FaultInjector, FaultLedger, FaultSpec, fault_outcomes
from flightsim.streamer import LinkError, Streamer
from flightsim.tiles import Tile
from runtime import protocol


def _tile(i: int) -> Tile:
    return Tile("s", f"s/{i}", i, np.zeros((3, 8, 8), np.uint8), Affine.identity(), None, (0, 0, 8, 8))


class FakeRuntime:
    """Acks every tile (``duplicate`` from its second copy on); says "done" for the tiles listed in
    ``finish`` (one every ``done_every_s``), or never."""

    def __init__(self, endpoint: str, done_every_s: float | None = None, ack: bool = True):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.done_every_s, self.ack = done_every_s, ack
        self.seen: dict[str, dict] = {}
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        ident = None
        pending: list[dict] = []
        next_done = time.monotonic() + (self.done_every_s or 0)
        while not self._stop.is_set():
            if self.sock.poll(20):
                ident, header, *_ = self.sock.recv_multipart()
                self.received += 1
                header = protocol.loads(header)
                duplicate = header["tile_id"] in self.seen
                if not duplicate:
                    self.seen[header["tile_id"]] = header
                    pending.append(header)
                if self.ack:
                    self.sock.send_multipart([ident, protocol.encode_ack(header, True, duplicate=duplicate)])
            if self.done_every_s is not None and pending and time.monotonic() >= next_done:
                header = pending.pop(0)
                self.sock.send_multipart([ident, protocol.encode_done({**header, "status": "ok"})])
                next_done = time.monotonic() + self.done_every_s

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _stream_in_thread(streamer: Streamer, tiles: list[Tile]) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def go() -> None:
        try:
            streamer.stream(tiles)
            out["result"] = "returned"
        except LinkError as e:
            out["result"] = e

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, out


# 1. drain: duplicate acks of resends are not progress

def test_a_resending_drain_whose_tiles_never_finish_raises_naming_them(endpoint: str) -> None:
    """Review: each resend was acked as a duplicate, which restarted the ack deadline, so a tile
    accepted and never reported done was resent forever and drain() never returned."""
    fake = FakeRuntime(endpoint)  # acks, never "done"
    streamer = Streamer(endpoint, window=4, resend_after_s=0.2, ack_timeout_s=1.0)
    thread, out = _stream_in_thread(streamer, [_tile(i) for i in range(3)])
    thread.join(8)
    alive = thread.is_alive()
    fake.close()
    assert not alive, f"drain() still resending after 8 s: resends {streamer.log.resends}"
    error = out["result"]
    assert isinstance(error, LinkError), error
    assert "3 tiles unfinished" in str(error) and all(f"s/{i}" in str(error) for i in range(3)), str(error)
    assert "no acknowledgement" in str(error)  # what callers match on
    assert streamer.log.resends  # it did resend before giving up
    streamer.close()


def test_a_resending_drain_that_keeps_finishing_tiles_outlives_the_ack_timeout(endpoint: str) -> None:
    """Progress ("done", one tile every 0.5 s) moves the deadline: 6 tiles take longer than
    ack_timeout_s in all, and the drain still ends without an error. (1.5 s of slack between two
    "done"s and the timeout, so that a busy 2-core host does not decide it.)"""
    fake = FakeRuntime(endpoint, done_every_s=0.5)
    streamer = Streamer(endpoint, window=8, resend_after_s=0.3, ack_timeout_s=2.0)
    thread, out = _stream_in_thread(streamer, [_tile(i) for i in range(6)])
    thread.join(15)
    fake.close()
    assert not thread.is_alive() and out["result"] == "returned", out
    assert streamer.log.done == {f"s/{i}" for i in range(6)}
    streamer.close()


def test_a_silent_runtime_is_reported_with_the_unacknowledged_tiles(endpoint: str) -> None:
    fake = FakeRuntime(endpoint, ack=False)
    streamer = Streamer(endpoint, window=4, ack_timeout_s=0.5)
    with pytest.raises(LinkError, match=r"no acknowledgement.*2 tiles unfinished.*s/0, s/1"):
        streamer.stream([_tile(0), _tile(1)])
    fake.close()
    streamer.close()


# 2. fault spec: seeds and repeated keys

@pytest.mark.parametrize("text", ["drop=0.1,seed=-1", "seed=1.5", "seed=x"])
def test_a_seed_that_is_not_a_non_negative_integer_is_refused_at_parse(text: str) -> None:
    with pytest.raises(ValueError, match="fault seed must be a non-negative integer"):
        FaultSpec.parse(text)


def test_a_negative_seed_given_as_an_override_is_refused_at_parse() -> None:
    with pytest.raises(ValueError, match="fault seed must be a non-negative integer; got -1"):
        FaultSpec.parse("drop=0.1", seed=-1)
    assert FaultSpec.parse("drop=0.1,seed=4", seed=0).seed == 0  # an override of 0 still wins
    assert FaultSpec.parse("drop=0.1", seed=7).seed == 7
    with pytest.raises(ValueError, match="fault seed must be a non-negative integer"):
        FaultSpec(seed=-1)  # built directly, as hil.run takes one: refused before numpy's generator


@pytest.mark.parametrize("fields, said", [
    ({"restarts": 1, "restart_every": 0}, "restart"),  # was ZeroDivisionError after the first tile went
    ({"restarts": -1, "restart_every": 3}, "restart"),
    ({"rates": {"link_los": 0.2}}, "unknown fault 'link_los'"),  # was ignored: a run with no faults at all
    ({"rates": {"drop": 1.5}}, "probability"),
    ({"rates": {"drop": -0.5, "duplicate": 0.5}}, "probability"),
    ({"rates": {"drop": 0.7, "truncate": 0.7}}, "add up to"),
], ids=["restart_every_0", "restarts_negative", "unknown_kind", "above_1", "negative", "sum_above_1"])
def test_a_fault_spec_built_directly_is_checked_as_a_parsed_one_is(endpoint: str, fields: dict[str, Any],
                                                                   said: str) -> None:
    """hil.run takes a FaultSpec as well as a text: one built directly was checked for its seed only,
    so an unknown kind was silently not injected and ``restart_every=0`` failed mid-stream."""
    fake = FakeRuntime(endpoint)
    streamer = Streamer(endpoint, window=4)
    try:
        with pytest.raises(ValueError, match=said):
            FaultInjector(streamer, FaultSpec(**fields)).stream([_tile(i) for i in range(3)])
    finally:
        fake.close()
        streamer.close()


@pytest.mark.parametrize("text, key", [("drop=0.9,drop=0.1", "drop"), ("restart=1@5,restart=3@2", "restart"),
                                       ("seed=1,drop=0.1,seed=2", "seed")])
def test_a_repeated_fault_key_is_refused(text: str, key: str) -> None:
    with pytest.raises(ValueError, match=f"repeated.*{key!r}"):
        FaultSpec.parse(text)


# 3. restarts: distinct tiles, acks already arrived, the first send time

def test_fault_outcomes_count_each_tile_caught_by_restarts_once() -> None:
    ledger = FaultLedger(restarts=[{"after_tile": 8, "in_flight": ["s/1", "s/2", "s/3"]},
                                   {"after_tile": 16, "in_flight": ["s/2", "s/3", "s/9"]}])
    report = fault_outcomes(ledger, {t: "processed" for t in ("s/1", "s/2", "s/3", "s/9")},
                            {"s/1": 1, "s/2": 1, "s/3": 2, "s/9": 1})
    restart = report["restart"]
    assert restart["tiles_in_flight"] == 4 and restart["outcomes"]["processed"] == 4
    assert restart["resent"] == 6  # every resend, a tile caught twice is resent twice
    assert restart["outcomes"]["duplicate_result_ignored"] == 1


def test_reconnect_reads_the_acks_already_waiting_before_it_drops_the_socket(endpoint: str) -> None:
    """Review: acks that had arrived but were not yet read were thrown away with the socket, and
    their tiles counted (and resent) as in flight."""
    fake = FakeRuntime(endpoint)
    streamer = Streamer(endpoint, window=8)
    for i in range(3):
        streamer.send_frames(f"s/{i}", _tile(i).frames())
    deadline = time.monotonic() + 5
    while fake.received < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # the acks are in the sender's socket, unread (ipc delivers in well under this)
    assert not streamer.log.acks
    assert streamer.reconnect() == []
    assert set(streamer.log.acks) == {"s/0", "s/1", "s/2"} and streamer.log.n_acks == 3
    fake.close()
    streamer.close()


def test_restarts_through_the_injector_report_distinct_tiles_in_flight(endpoint: str) -> None:
    fake = FakeRuntime(endpoint)
    streamer = Streamer(endpoint, window=16)
    injector = FaultInjector(streamer, "restart=2@3,seed=0")
    log = injector.stream([_tile(i) for i in range(9)])
    fake.close()
    caught = {t for r in injector.ledger.restarts for t in r["in_flight"]}
    assert len(injector.ledger.restarts) == 2 and caught <= {f"s/{i}" for i in range(9)}
    assert set(log.acks) == {f"s/{i}" for i in range(9)}  # the resends were acked
    report = fault_outcomes(injector.ledger, {f"s/{i}": "processed" for i in range(9)}, {})
    assert report["restart"]["tiles_in_flight"] == len(caught)
    streamer.close()


def test_a_resend_keeps_the_first_send_time(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: sent_at was overwritten by a resend, so the rig's latency (result time - sent_at) came
    out negative for a tile whose result had arrived before the resend."""
    import flightsim.streamer as streamer_module

    now = [100.0]
    monkeypatch.setattr(streamer_module.time, "monotonic", lambda: now[0])
    streamer = Streamer(endpoint, window=8)
    frames = _tile(0).frames()
    streamer.send_frames("s/0", frames)
    now[0] = 105.0
    streamer.send_frames("s/0", frames)  # a restart's resend, or a duplicate
    assert streamer.log.sent_at["s/0"] == 100.0
    streamer._sock.setsockopt(zmq.LINGER, 0)
    streamer.close()
