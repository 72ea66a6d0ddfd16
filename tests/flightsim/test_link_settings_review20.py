"""Review of 2026-12 (review 20): the link simulator's settings are checked for what they are, not only
for their sign. Each case failed before: NaN passed every "<= 0" and "< 1" check (a NaN window let
every tile out unacknowledged, a NaN rate sent unpaced, a NaN line rate stamped every tile's time NaN
and its frames raised mid-stream, restart=1@NaN never restarted), a negative timeout reached zmq's
poll, where a negative wait is for ever (a silent runtime hung the drain instead of a LinkError), and
fractional counts were taken (restart=1.5@2 restarted twice)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.faults import FaultInjector, FaultSpec
from flightsim.streamer import LinkError, Streamer
from flightsim.tiles import Tile
from flightsim.timing import Timing
from runtime import protocol


def _tile(i: int) -> Tile:
    return Tile("s", f"s/{i}", i, np.zeros((3, 8, 8), np.uint8), Affine.identity(), None, (0, 8 * i, 8, 8))


@pytest.fixture()
def acking_runtime(tmp_path: Path) -> Iterator[str]:
    """A stand-in runtime (a real ROUTER in a thread) that acknowledges every tile and says it is done."""
    endpoint = f"ipc://{tmp_path}/tiles"
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    stop = threading.Event()

    def serve() -> None:
        seen: set[str] = set()
        while not stop.is_set():
            if not sock.poll(20):
                continue
            identity, header, *_ = sock.recv_multipart()
            head = protocol.loads(header)
            duplicate = head["tile_id"] in seen
            seen.add(head["tile_id"])
            sock.send_multipart([identity, protocol.encode_ack(head, True, duplicate=duplicate)])
            sock.send_multipart([identity, protocol.encode_done({**protocol.tile_ids(head), "status": "ok"})])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        thread.join(5)
        sock.close()


@pytest.mark.parametrize("fields, said", [
    ({"window": math.nan}, "window must be an integer >= 1"),
    ({"window": 2.5}, "window must be an integer >= 1"),
    ({"window": True}, "window must be an integer >= 1"),
    ({"rate_hz": math.nan}, r"rate_hz \(None: unpaced\) must be a finite number > 0"),
    ({"rate_hz": math.inf}, r"rate_hz \(None: unpaced\) must be a finite number > 0"),
    ({"ack_timeout_s": -1.0}, "ack_timeout_s must be a finite number > 0"),
    ({"ack_timeout_s": 0.0}, "ack_timeout_s must be a finite number > 0"),
    ({"ack_timeout_s": math.nan}, "ack_timeout_s must be a finite number > 0"),
    ({"ack_timeout_s": math.inf}, "ack_timeout_s must be a finite number > 0"),
    ({"resend_after_s": -1.0}, r"resend_after_s \(None: never\) must be a finite number > 0"),
    ({"resend_after_s": 0.0}, r"resend_after_s \(None: never\) must be a finite number > 0"),
    ({"resend_after_s": math.nan}, r"resend_after_s \(None: never\) must be a finite number > 0"),
], ids=["window_nan", "window_fraction", "window_bool", "rate_nan", "rate_inf", "ack_negative", "ack_zero",
        "ack_nan", "ack_inf", "resend_negative", "resend_zero", "resend_nan"])
def test_a_streamer_setting_out_of_its_range_is_refused_naming_it(acking_runtime: str, fields: dict[str, Any],
                                                                   said: str) -> None:
    with pytest.raises(ValueError, match=said):
        Streamer(acking_runtime, **fields).close()


def test_a_window_given_as_a_numpy_integer_still_streams(acking_runtime: str) -> None:
    """The check takes the integer types a caller computes a window with, as the comparison did."""
    streamer = Streamer(acking_runtime, window=np.int64(2), resend_after_s=5.0)
    try:
        log = streamer.stream([_tile(i) for i in range(5)])
    finally:
        streamer.close()
    assert streamer.window == 2 and log.done == {f"s/{i}" for i in range(5)}


def test_a_short_ack_timeout_still_raises_a_link_error_on_a_silent_runtime(tmp_path: Path) -> None:
    """The smallest timeouts stay allowed: a ROUTER that never answers is a LinkError, not a hang."""
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(f"ipc://{tmp_path}/silent")
    streamer = Streamer(f"ipc://{tmp_path}/silent", window=2, ack_timeout_s=0.3)
    try:
        with pytest.raises(LinkError, match="no acknowledgement"):
            streamer.stream([_tile(i) for i in range(3)])
    finally:
        streamer.close()
        sock.close()


@pytest.mark.parametrize("fields, said", [
    ({"mode": "pushbroom", "line_rate_hz": math.nan}, "line_rate_hz must be a finite number > 0"),
    ({"mode": "pushbroom", "line_rate_hz": math.inf}, "line_rate_hz must be a finite number > 0"),
    ({"mode": "rate", "rate_hz": math.inf}, "rate_hz must be a finite number > 0"),
    ({"mode": "rate", "rate_hz": 10.0, "burst": 2.5}, r"burst \(tiles\) must be an integer >= 1"),
    ({"mode": "asap", "epoch": math.nan}, r"epoch \(Unix seconds\) must be a finite number"),
], ids=["line_rate_nan", "line_rate_inf", "rate_inf", "burst_fraction", "epoch_nan"])
def test_a_timing_setting_out_of_its_range_is_refused_naming_it(fields: dict[str, Any], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        Timing(**fields)


def test_a_valid_timing_stamps_finite_times_that_frame() -> None:
    tiles = list(Timing("pushbroom", line_rate_hz=100.0, epoch=1000.0).apply([([_tile(0), _tile(1)], 8, None)]))
    assert [t.time for t in tiles] == [1000.04, 1000.04] and [t.ready_s for t in tiles] == [0.08, 0.08]
    assert all(protocol.loads(t.frames()[0])["time"] == 1000.04 for t in tiles)


@pytest.mark.parametrize("fields", [{"restarts": 1, "restart_every": math.nan},
                                    {"restarts": 1.5, "restart_every": 2},
                                    {"restarts": 2, "restart_every": 2.5}],
                         ids=["every_nan", "restarts_fraction", "every_fraction"])
def test_a_restart_schedule_that_is_not_integers_is_refused(fields: dict[str, Any]) -> None:
    """hil.run takes a FaultSpec built directly: restart=1@NaN made no restart, 1.5@2 made two."""
    with pytest.raises(ValueError, match="expected N@K with integers N >= 0 and K >= 1"):
        FaultSpec(**fields)


def test_an_integer_restart_schedule_restarts_as_asked(acking_runtime: str) -> None:
    streamer = Streamer(acking_runtime, window=2, resend_after_s=5.0)
    injector = FaultInjector(streamer, FaultSpec(restarts=np.int64(2), restart_every=2))
    try:
        log = injector.stream([_tile(i) for i in range(7)])
    finally:
        streamer.close()
    assert [r["after_tile"] for r in injector.ledger.restarts] == [2, 4]
    assert log.done == {f"s/{i}" for i in range(7)}


def test_every_duplicate_ack_is_counted_not_every_duplicated_tile(acking_runtime: str) -> None:
    """hil's rig waits for n_acks minus the duplicate acks results: a tile sent three times has two
    duplicate acks, and counting it once made the rig wait its whole duplicate grace for a result
    the runtime was never to send."""
    streamer = Streamer(acking_runtime, window=4)
    try:
        log = streamer.stream([_tile(0), _tile(0), _tile(0), _tile(1)])
    finally:
        streamer.close()
    assert log.n_acks == 4 and log.n_duplicate_acks == 2
    assert log.duplicates == ["s/0"]
