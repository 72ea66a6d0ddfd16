"""Review: a fault spec with ``link_loss`` on a sender that does not resend was refused only when a
tile happened to draw it. ``hil run --faults link_loss=0.001`` with ``[run] resend_after_s = 0`` ran
to the end and reported the spec as applied (no tile drew it); a larger rate failed mid-stream after
tiles had been sent. The injector now refuses it before the first tile."""

from __future__ import annotations

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.faults import FaultInjector
from flightsim.streamer import Streamer
from flightsim.tiles import Tile


def _tiles(n: int) -> list[Tile]:
    return [Tile("s", f"s/{i}", i, np.zeros((3, 8, 8), np.uint8), Affine.identity(), None, (8 * i, 0, 8, 8))
            for i in range(n)]


@pytest.mark.parametrize("spec", ["link_loss=0.001,seed=0", "drop=0.1,link_loss=0.5,seed=3"])
def test_link_loss_without_resends_is_refused_before_any_tile(endpoint: str, spec: str) -> None:
    streamer = Streamer(endpoint)  # resend_after_s=None: never resends
    sent: list[str] = []
    streamer.send_frames = lambda t, f, lost_in_transit=False: sent.append(t)  # type: ignore[method-assign]
    try:
        with pytest.raises(ValueError, match=r"link_loss needs a streamer that resends .*valid without resends: drop"):
            FaultInjector(streamer, spec).stream(_tiles(8))
        assert sent == []
    finally:
        streamer._sock.setsockopt(zmq.LINGER, 0)
        streamer.close()


def test_a_link_loss_rate_of_zero_asks_for_nothing(endpoint: str) -> None:
    streamer = Streamer(endpoint)
    sent: list[str] = []
    streamer.send_frames = lambda t, f, lost_in_transit=False: sent.append(t)  # type: ignore[method-assign]
    streamer.drain = lambda: None  # type: ignore[method-assign]  # nothing is listening: no acks to wait for
    try:
        FaultInjector(streamer, "link_loss=0,seed=0").stream(_tiles(3))
        assert sent == ["s/0", "s/1", "s/2"]
    finally:
        streamer._sock.setsockopt(zmq.LINGER, 0)
        streamer.close()
