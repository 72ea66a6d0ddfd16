"""Send tiles to a runtime over ZeroMQ at a given rate, with a credit window on acknowledgements."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from dataclasses import dataclass, field

import zmq
from tqdm import tqdm

from flightsim.tiles import Tile
from runtime import protocol
from runtime.config import check_count, check_number


class LinkError(RuntimeError):
    """The runtime stopped acknowledging tiles."""


@dataclass
class StreamLog:
    """What the sender knows: when each tile left, and how the runtime acknowledged it."""

    sent_at: dict[str, float] = field(default_factory=dict)       # tile_id -> time.monotonic() of its first send
    acks: dict[str, dict] = field(default_factory=dict)           # tile_id -> ack message
    anonymous_acks: list[dict] = field(default_factory=list)      # acks of tiles whose id was unreadable
    n_acks: int = 0                                               # every ack received (a duplicate gets two)
    n_duplicate_acks: int = 0                                     # acks of copies the runtime already held
    done: set[str] = field(default_factory=set)                    # tiles whose result the runtime has sent
    resends: dict[str, int] = field(default_factory=dict)         # tile_id -> times sent again
    # tile_id -> the rejection of a later copy of a tile already accepted (a resend the link corrupted,
    # or one a restarted runtime refused): the accepted ack stays in ``acks``, the tile unfinished
    rejected_copies: dict[str, dict] = field(default_factory=dict)

    @property
    def duplicates(self) -> list[str]:
        """Tiles the runtime had already taken (the same ids and content): they get no new result."""
        return [t for t, a in self.acks.items() if a.get("duplicate")]

    @property
    def unacked(self) -> list[str]:
        return [t for t in self.sent_at if t not in self.acks]


class Streamer:
    """A DEALER that keeps at most ``window`` tiles unacknowledged, paced at ``rate_hz`` if given.

    The runtime acknowledges a tile once it is decoded and handed to the device, so a busy device
    holds acks back and the window stops the sender: backpressure, not loss.

    With ``resend_after_s`` the sender also keeps every tile until the runtime reports it ``done``
    (its result has gone out) or rejects it, and sends again whatever has heard nothing for that
    long: a runtime that restarts mid-stream loses no tile. The runtime knows a resend by its
    (scene_id, tile_id) and never processes it twice (the Lazy Pirate pattern, per tile).

    ``want_done=False`` tells the runtime, in each tile's header, that this sender will not resend
    and so need not hear "done": one message fewer per tile on the link and on both hosts
    (``log.done`` then stays empty). It cannot go with ``resend_after_s``, which waits for them.

    ``check``: called before each send and at least every half second while acknowledgements are
    awaited; what it raises ends the stream (a rig whose runtime process died: said at once, not
    after ``ack_timeout_s``).

    Raises:
        ValueError: a ``window`` that is not an integer >= 1, or a ``rate_hz``, ``ack_timeout_s`` or
            ``resend_after_s`` that is not a finite number > 0 (the first and last may be None).
    """

    def __init__(self, endpoint: str, window: int = 16, rate_hz: float | None = None,
                 ack_timeout_s: float = 30.0, context: zmq.Context | None = None,
                 resend_after_s: float | None = None, keys: Any = None, want_done: bool = True,
                 check: Callable[[], None] | None = None):
        # Each checked for what it is, not only its sign: NaN passed "< 1" and "<= 0" (a NaN window let
        # every tile out unacknowledged, a NaN rate sent unpaced), and a negative or NaN timeout reached
        # zmq's poll, where a negative wait is for ever and NaN raised mid-stream.
        window = check_count("window", window)  # numpy ints too
        if rate_hz is not None:
            rate_hz = check_number("rate_hz (None: unpaced)", rate_hz, 0.0, strict=True)
        ack_timeout_s = check_number("ack_timeout_s", ack_timeout_s, 0.0, strict=True)
        if resend_after_s is not None:
            resend_after_s = check_number("resend_after_s (None: never)", resend_after_s, 0.0, strict=True)
        if resend_after_s is not None and not want_done:
            raise ValueError("resend_after_s needs want_done=True: a resending sender keeps each tile "
                             "until it hears \"done\"")
        self.want_done, self.check = want_done, check
        self.window, self.rate_hz, self.ack_timeout_s = window, rate_hz, ack_timeout_s
        self.endpoint, self._context = endpoint, context or zmq.Context.instance()
        self.keys = keys  # runtime.security.ClientKeys when the runtime protects its tile socket
        self._sock = self._connect()
        self.log = StreamLog()
        # Credit: tile_id -> its messages sent and not yet acknowledged (insertion order: oldest first).
        # A resend takes over the credit of the earlier message it replaces (see _resend_stale), so
        # at most ``window`` messages, and so tiles, are unacknowledged at any time.
        self._in_flight: dict[str, int] = {}
        self.resend_after_s = resend_after_s
        self._unfinished: dict[str, tuple[list[bytes], float]] = {}  # tile_id -> (frames, last sent)
        # When the runtime last made progress (a "done", a rejection, the ack of a tile's first
        # send) or a new tile left: the ack deadline runs from here, so that acks of resends of
        # tiles the runtime already holds ("duplicate") cannot keep a stalled drain alive.
        self._progress_at = time.monotonic()
        # When send_frames last had credit again after waiting for it (0.0: it has not waited since
        # stream() reset it): a burst held by the window paces the bursts after it from then.
        self._credit_at = 0.0

    def send_frames(self, tile_id: str, frames: list[bytes], lost_in_transit: bool = False) -> None:
        """Send one message (any frames: a fault injector sends broken ones) within the window.

        ``lost_in_transit``: the sender does everything it does for a sent tile, but the link loses
        the message (a fault injector's link drop): only a resend can save it.
        """
        if self.check is not None:
            self.check()
        if self.resend_after_s is not None:
            # Resend what is stale now, not only when acks fall silent: a tile lost in transit would
            # otherwise wait, holding its credit, for a lull (in practice the end of the stream).
            if self._sock.poll(0):
                self._read_waiting()  # first: a tile whose "done" is waiting unread is not stale
            self._resend_stale()
        if self._outstanding >= self.window:
            while self._outstanding >= self.window:
                self._wait_ack(self.ack_timeout_s)
            self._credit_at = time.monotonic()
        now = time.monotonic()  # before it leaves: its result may come back before the next line
        if not lost_in_transit:
            self._send(frames)
        if tile_id not in self.log.sent_at:
            self.log.sent_at[tile_id] = now  # the first send: a resend keeps it (latency runs from here)
            self._progress_at = now
        self._in_flight[tile_id] = self._in_flight.get(tile_id, 0) + 1
        if self.resend_after_s is not None:
            self._unfinished[tile_id] = (frames, time.monotonic())

    @property
    def _outstanding(self) -> int:
        """Messages sent and not yet acknowledged: the credit in use."""
        return sum(self._in_flight.values())

    def _free_credit(self, tile_id: Any) -> None:
        """An ack frees one message's credit: one of its tile's, if that tile has any in flight.

        An ack of a tile none of whose messages is in flight (the second ack of a tile resent before
        its first ack came: the resend took over that message's credit) frees nothing, so acks of
        duplicates cannot let more than ``window`` tiles out. An ack naming no tile we sent (its
        header was unreadable) answers some message: the oldest in flight is the best guess.
        """
        if self._in_flight.get(tile_id, 0) == 0:
            if tile_id in self.log.sent_at:
                return
            tile_id = next(iter(self._in_flight), None)
            if tile_id is None:
                return
        self._in_flight[tile_id] -= 1
        if self._in_flight[tile_id] == 0:
            del self._in_flight[tile_id]

    def _send(self, frames: list[bytes]) -> None:
        """Send one message, waiting for room at most ``ack_timeout_s``: a socket whose connection
        was dropped (the runtime refused this sender's CURVE handshake) blocks a plain send forever."""
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            if not self._sock.poll(int(self.ack_timeout_s * 1000), zmq.POLLOUT):
                raise LinkError(f"nothing could be sent to {self.endpoint} in {self.ack_timeout_s} s: no "
                                "connection takes messages (a refused CURVE handshake drops it)") from None
            self._sock.send_multipart(frames, copy=False)

    def _connect(self) -> zmq.Socket:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 2000)
        if self.keys is not None:
            self.keys.apply(sock)
        sock.connect(self.endpoint)
        return sock

    def stream(self, tiles: Iterable[Tile], want_mask: bool = False, total: int | None = None,
               progress: bool = False, send: Callable[[Tile, bool], None] | None = None) -> StreamLog:
        """Send every tile, then wait for the last acknowledgements.

        A tile is held until ``start + tile.ready_s`` (its timing, :mod:`flightsim.timing`) and, with
        ``rate_hz``, until its slot at that rate. A tile that ``keeps_pace`` (timing's rate mode) is
        also held until the burst before it (the tiles of the previous ``ready_s``) went out plus the
        difference of their ready times: after a stall of the tile source the overdue bursts keep
        their spacing instead of leaving back to back. ``send`` replaces how one tile goes out (default:
        its frames through :meth:`send_frames`); a fault injector uses it (:mod:`flightsim.faults`).
        """
        start = time.monotonic()
        send = send or (lambda tile, mask: self.send_frames(tile.tile_id, tile.frames(mask, self.want_done)))
        burst: tuple[float, float] | None = None  # (ready_s, when it went out) of the last burst sent
        for i, tile in enumerate(tqdm(tiles, total=total, disable=not progress, unit="tile", desc="stream")):
            here = time.monotonic()  # the tile is here: later than its slot if the tile source stalled
            due = start + max(i / self.rate_hz if self.rate_hz else 0.0, tile.ready_s)
            new_burst = burst is None or tile.ready_s > burst[0]
            if tile.keeps_pace and new_burst and burst is not None:
                due = max(due, burst[1] + tile.ready_s - burst[0])
            delay = due - here
            if delay > 0:
                time.sleep(delay)
            self._credit_at = 0.0
            send(tile, want_mask)
            if new_burst:
                # When the burst could leave: its slot, or later when the tile source or the window
                # (waiting for credit) held it, which delays the bursts after it too. Not when the send
                # returned: the time each send takes (and the sleep's overshoot) added to every interval
                # and a rate of 50 tiles/s sent 47.
                burst = (tile.ready_s, max(due, here, self._credit_at))
        self.drain()
        return self.log

    def stream_frames(self, messages: Iterable[tuple[str, list[bytes]]]) -> StreamLog:
        """Send messages encoded beforehand, ``(tile_id, frames)``, as fast as the window allows,
        then wait for the last acknowledgements: a benchmark's ground, which encodes its tiles
        before the clock starts as benchmark_app fills its tensors before it does."""
        for tile_id, frames in messages:
            self.send_frames(tile_id, frames)
        self.drain()
        return self.log

    def reconnect(self) -> list[str]:
        """Drop the connection as a restarting sender does, and connect anew.

        Acknowledgements that have already arrived are read first (a sender has them); messages
        still queued in the old socket are discarded, and acknowledgements of tiles still in flight
        go to a peer that no longer exists. Returns the ids sent but not acknowledged, which a
        recovering sender may send again.
        """
        if self._sock.poll(0):
            self._read_waiting()
        unacked = self.log.unacked
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.close()
        self._sock = self._connect()
        self._in_flight.clear()
        self._progress_at = time.monotonic()  # a new connection: its acks have the full timeout
        return unacked

    def drain(self) -> None:
        """Wait until every message sent has been acknowledged (and, resending, is done).

        Raises:
            LinkError: when the runtime has made no progress for ``ack_timeout_s`` (no "done", no
                rejection, no ack of a tile's first send: acks of resends it already holds do not
                count, nor, resending, acks naming no tile), naming the tiles still unfinished.
        """
        while self._outstanding > 0 or self._unfinished:
            self._wait_ack(self.ack_timeout_s)

    def _wait_ack(self, timeout_s: float) -> None:
        """Read the acks waiting, or wait for one; raise :class:`LinkError` once ``timeout_s`` has
        passed since the last progress (see :meth:`drain`), resending stale tiles meanwhile."""
        step = timeout_s if self.resend_after_s is None else min(timeout_s, self.resend_after_s / 2)
        if self.check is not None:
            step = min(step, 0.5)
        while not self._sock.poll(int(step * 1000)):
            if self.check is not None:
                self.check()
            if self.resend_after_s is not None:
                self._resend_stale()
            if time.monotonic() >= self._progress_at + timeout_s:
                raise self._stalled(timeout_s)
        self._read_waiting()
        if self.resend_after_s is not None:  # also while acks keep coming (see send_frames)
            self._resend_stale()
        if time.monotonic() >= self._progress_at + timeout_s:
            raise self._stalled(timeout_s)

    def _stalled(self, timeout_s: float) -> LinkError:
        unfinished = [t for t in self.log.sent_at if t not in self.log.acks or t in self._unfinished]
        shown = ", ".join(unfinished[:10]) + (", ..." if len(unfinished) > 10 else "")
        what = "unacknowledged or not done" if self.resend_after_s is not None else "unacknowledged"
        return LinkError(f"no acknowledgement or other progress in {timeout_s} s: {len(unfinished)} tiles "
                         f"unfinished ({what}): {shown or 'none'}")

    def _read_waiting(self) -> None:
        """Take every message waiting on the socket (at least one must be)."""
        flags = 0  # the first waits (one is there); the rest are taken until none is, without a poll each
        while True:
            try:
                ack = protocol.loads(self._sock.recv(flags))
            except zmq.Again:
                return
            flags = zmq.NOBLOCK
            tile_id = ack.get("tile_id")
            if ack.get("type") == "done":
                # The tile's result has gone out: credit was returned by its ack already.
                if tile_id in self.log.sent_at:
                    if tile_id not in self.log.done or tile_id in self._unfinished:
                        self._progress_at = time.monotonic()
                    self.log.done.add(tile_id)
                    self._unfinished.pop(tile_id, None)
            else:
                self._free_credit(tile_id)
                self.log.n_acks += 1
                self.log.n_duplicate_acks += bool(ack.get("duplicate"))  # per copy: a tile may have several
                earlier = self.log.acks.get(tile_id)
                # A rejected copy of a tile accepted before, still unfinished: not the tile's end, whose
                # accepted copy's "done" is to come (or, the runtime gone, a resend will be taken).
                copy = (ack.get("status") == "rejected" and tile_id in self._unfinished and earlier is not None
                        and earlier.get("status") == "accepted")
                # Progress unless it is the ack of a resend of a tile the runtime already holds, or
                # the rejection of such a copy (a runtime that refuses every resend must not keep a
                # drain alive). Resending, an ack naming no tile we sent is none either: it ends no
                # tile, and a tile whose id the runtime cannot echo is refused so on every resend,
                # which kept the drain alive for ever (without resends it frees credit, all a drain waits for).
                can_progress = tile_id in self.log.sent_at or self.resend_after_s is None
                if can_progress and not (ack.get("duplicate") and tile_id in self.log.resends) and not copy:
                    self._progress_at = time.monotonic()
                if copy:
                    self.log.rejected_copies[tile_id] = ack
                elif tile_id in self.log.sent_at:
                    self.log.acks[tile_id] = ack
                    if ack.get("status") == "rejected":  # final: a rejected tile has no "done"
                        self._unfinished.pop(tile_id, None)
                else:
                    self.log.anonymous_acks.append(ack)

    def _resend_stale(self) -> None:
        """Send again every unfinished tile that has heard nothing for ``resend_after_s``.

        A stale tile's messages still unacknowledged are taken for lost (in transit, or with a
        runtime that died): their acks will never come, so the resend takes over their credit (the
        tile keeps one message's worth) rather than holding the window forever. A stale tile
        already acknowledged (waiting for its "done") has no credit left and its resend needs new
        credit, as a send does: without room it waits for a later call.
        """
        now = time.monotonic()
        stale = [t for t, (_, last) in self._unfinished.items() if now - last >= self.resend_after_s]
        for tile_id in stale:
            if tile_id not in self._in_flight and self._outstanding >= self.window:
                continue
            frames, _ = self._unfinished[tile_id]
            self._send(frames)
            self._in_flight[tile_id] = 1
            self._unfinished[tile_id] = (frames, now)
            self.log.resends[tile_id] = self.log.resends.get(tile_id, 0) + 1

    def close(self) -> None:
        self._sock.close()
