"""Review of the sender: credit with resends, rate-mode pacing after a stall, and what the fault
injector sends (a fake runtime: a ROUTER in a thread, no model)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.faults import FaultInjector, fault_outcomes
from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from flightsim.timing import Timing
from runtime import protocol


def _tile(i: int) -> Tile:
    pixels = np.random.default_rng(i).integers(0, 255, (3, 8, 8), dtype=np.uint8)
    return Tile("s", f"s/{i}", i, pixels, Affine.identity(), None, (8 * i, 0, 8, 8))


class SlowRuntime:
    """Acks each new tile ``ack_delay_s`` after it arrives (a busy device), a copy at once with
    ``duplicate``; says "done" right after the ack (unless the header said want_done false)."""

    def __init__(self, endpoint: str, ack_delay_s: float = 0.0):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.ack_delay_s = ack_delay_s
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.sock.poll(20):
                continue
            ident, *frames = self.sock.recv_multipart()
            header, _ = protocol.decode_tile(frames, 10**8, 16, 1 << 16)
            duplicate = header["tile_id"] in self.seen
            self.seen.add(header["tile_id"])
            if self.ack_delay_s and not duplicate:
                time.sleep(self.ack_delay_s)
            self.sock.send_multipart([ident, protocol.encode_ack(header, True, duplicate=duplicate)])
            if header.get("want_done", True):
                self.sock.send_multipart([ident, protocol.encode_done({**header, "status": "ok",
                                                                        "duplicate": duplicate})])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _unacked(streamer: Streamer) -> int:
    return sum(t not in streamer.log.acks for t in streamer.log.sent_at)


def test_resends_keep_at_most_window_tiles_unacknowledged(endpoint: str) -> None:
    """Review: a resend set the credit to the number of tiles resent, dropping that of the others
    in flight, and each duplicate ack of a resend then freed credit as if a new tile were acked:
    with window 4, up to 14 distinct tiles were out unacknowledged at once."""
    fake = SlowRuntime(endpoint, ack_delay_s=0.2)  # acks slower than the resend timer
    streamer = Streamer(endpoint, window=4, resend_after_s=0.3, ack_timeout_s=10.0)
    worst = [0]
    send_frames, resend_stale = streamer.send_frames, streamer._resend_stale

    def watched_send(tile_id: str, frames: list[bytes], lost_in_transit: bool = False) -> None:
        send_frames(tile_id, frames, lost_in_transit)
        worst[0] = max(worst[0], _unacked(streamer), streamer._outstanding)

    def watched_resend() -> None:
        resend_stale()
        worst[0] = max(worst[0], _unacked(streamer), streamer._outstanding)

    streamer.send_frames, streamer._resend_stale = watched_send, watched_resend  # type: ignore[method-assign]
    log = streamer.stream([_tile(i) for i in range(20)])
    fake.close()
    assert sum(log.resends.values()) > 0  # the case under test: resends while tiles are in flight
    assert worst[0] <= 4, f"{worst[0]} tiles (or messages) unacknowledged with window 4"
    assert log.done == {f"s/{i}" for i in range(20)}
    streamer.close()


def test_a_window_of_one_recovers_a_tile_lost_in_transit(endpoint: str) -> None:
    """The credit of a message the link lost is taken over by its resend, so the window does not
    stay full waiting for an ack that never comes."""
    fake = SlowRuntime(endpoint)
    streamer = Streamer(endpoint, window=1, resend_after_s=0.3, ack_timeout_s=10.0)
    injector = FaultInjector(streamer, "link_loss=0.5,seed=0")
    log = injector.stream([_tile(i) for i in range(6)])
    fake.close()
    assert injector.ledger.tiles_with("link_loss")
    assert log.done == {f"s/{i}" for i in range(6)} and streamer._outstanding == 0
    streamer.close()


def test_rate_mode_keeps_its_pace_after_the_tile_source_stalls(endpoint: str) -> None:
    """Review: a rate-mode tile was due at its slot from the stream's start, so after a stall of
    the tile source (hil reads each scene when its turn comes) every overdue tile went out back to
    back. The pace is asserted over the 10 tiles after each stall, not over single gaps."""
    fake = SlowRuntime(endpoint)
    streamer = Streamer(endpoint, window=16)
    stamps: list[float] = []
    send_frames = streamer.send_frames

    def stamped(tile_id: str, frames: list[bytes], lost_in_transit: bool = False) -> None:
        stamps.append(time.monotonic())
        send_frames(tile_id, frames, lost_in_transit)

    streamer.send_frames = stamped  # type: ignore[method-assign]

    def scenes() -> Iterator[tuple[list[Tile], int, None]]:
        for k in range(2):
            time.sleep(0.6)  # the scene is read when its turn comes: 12 slots at 20 tiles/s
            yield [_tile(10 * k + i) for i in range(10)], 80, None

    streamer.stream(Timing("rate", rate_hz=20.0, burst=1).apply(scenes()))
    fake.close()
    assert len(stamps) == 20
    for first in (0, 10):  # each scene's 10 tiles: 9 gaps of 0.05 s at least
        span = stamps[first + 9] - stamps[first]
        assert span >= 0.9 * 9 / 20.0, f"10 tiles went out in {span:.3f} s at 20 tiles/s"
    streamer.close()


def test_rate_mode_bursts_keep_their_spacing_after_a_stall() -> None:
    """The rule without a socket: a burst leaves at its slot or burst / rate after the one before."""
    tiles = list(Timing("rate", rate_hz=10.0, burst=2).apply([([_tile(i) for i in range(6)], 48, None)]))
    assert [t.ready_s for t in tiles] == pytest.approx([0, 0, 0.2, 0.2, 0.4, 0.4])
    assert all(t.keeps_pace for t in tiles)
    assert not any(t.keeps_pace for t in Timing("pushbroom", line_rate_hz=100.0).apply([([_tile(0)], 8, None)]))


def test_a_restart_resends_the_link_loss_tiles_it_reports_in_flight(endpoint: str) -> None:
    """Review: a link_loss tile was never kept for a restart, so the restart listed it in flight
    (and the report counted it resent) without sending it again."""
    fake = SlowRuntime(endpoint)
    streamer = Streamer(endpoint, window=4, resend_after_s=0.5, ack_timeout_s=5.0)
    injector = FaultInjector(streamer, "link_loss=0.2,restart=1@3,seed=0")
    restart_sends: list[str] = []
    restart = injector._restart

    def watched_restart() -> None:
        send_frames = streamer.send_frames

        def spy(tile_id: str, frames: list[bytes], lost_in_transit: bool = False) -> None:
            restart_sends.append(tile_id)
            send_frames(tile_id, frames, lost_in_transit)

        streamer.send_frames = spy  # type: ignore[method-assign]
        try:
            restart()
        finally:
            streamer.send_frames = send_frames  # type: ignore[method-assign]

    injector._restart = watched_restart  # type: ignore[method-assign]
    log = injector.stream([_tile(i) for i in range(6)])
    fake.close()
    in_flight = [t for r in injector.ledger.restarts for t in r["in_flight"]]
    assert set(in_flight) & set(injector.ledger.tiles_with("link_loss"))  # the case under test
    assert restart_sends == in_flight  # every tile reported in flight was sent again
    report = fault_outcomes(injector.ledger, {t: "processed" for t in log.done}, {t: 1 for t in log.done})
    assert report["restart"]["resent"] == len(restart_sends)
    assert log.done == {f"s/{i}" for i in range(6)}
    streamer.close()


@pytest.mark.parametrize("kind", ["corrupt", "truncate", "bad_checksum", "duplicate", "reorder"])
def test_faulty_tiles_carry_the_streamers_want_done(endpoint: str, kind: str) -> None:
    """Review: every fault path framed its tile with want_done true, whatever the streamer said."""
    streamer = Streamer(endpoint, want_done=False)
    headers: list[dict] = []
    streamer.send_frames = (  # type: ignore[method-assign]
        lambda t, f, lost_in_transit=False: headers.append(protocol.loads(f[0])))
    injector = FaultInjector(streamer, f"{kind}=1.0,seed=0")
    for tile in injector._reordered([_tile(i) for i in range(3)]):
        injector._send(tile, False)
    assert headers and [h.get("want_done", True) for h in headers] == [False] * len(headers)
    streamer._sock.setsockopt(zmq.LINGER, 0)
    streamer.close()
