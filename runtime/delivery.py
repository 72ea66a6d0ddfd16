"""Ground-acknowledged delivery: a result counts as delivered when the ground says it has it.

Why: a PUSH socket hands a result to ZeroMQ, which may hold it for a reader that never reads, or
lose it when that reader disconnects; a sender told "done" at that point forgets a tile whose result
nobody has (issue 13: 300 of 300 "done", 0 results at the reconnected reader). With ``[delivery]
ground_ack = true`` the runtime binds an ``acks`` socket (PULL); the ground sends
``{"v": 1, "ack": [scene_id, tile_id, checksum]}`` for each result it has taken
(:class:`hil.collector.ResultCollector` does with ``acks=``). Until then the result waits here:

* its tile stays *inside* the runtime, so the ``max_tiles_inside`` bound also bounds results
  waiting for the ground (overload backs up to the senders, never into memory);
* it is sent again every ``ground_ack_timeout_s`` (to whichever ground is connected then; the ground
  keeps one copy per tile key);
* only the ground's ack releases it and sends its tile's "done" to the sender. At shutdown,
  results still unacknowledged after ``shutdown_grace_s`` are given up on (``results_undeliverable``):
  their tiles never got "done", so their senders resend them to the next runtime.

Only an accepted tile's result is held for the ground: a tile rejected before it was accepted is
answered by its rejected ack, and its rejection result is sent once with no key (a corrupted copy of
an accepted tile carries that tile's key, which must stay its own result's; docs/protocol.md).

Length: one protocol. The ledger of results awaiting the ground (:class:`AwaitingGround`) and the
thread that sends, resends and releases against it (:class:`ResultSender`) keep one invariant between
them, each accepted tile released and answered once, and the "done" frames they hand the main loop
are read back here (:func:`read_told`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from runtime import protocol
from runtime.health import Heartbeat

log = logging.getLogger("runtime")

#: How often the sender thread looks for acknowledgements, overdue resends and results put without a
#: wake-up (:meth:`ResultSender.put`) when nothing wakes it, in seconds.
LOOK_S = 0.05

Key = tuple[str, str, str]
#: A tile's outcome, (status, reason): ("ok", None), or ("rejected", a Reason value) for a tile
#: rejected after it was accepted. Its "done" says it, and a resend of the tile hears it again.
Outcome = tuple[str, str | None]
OK: Outcome = ("ok", None)


@dataclass
class Waiting:
    """A result sent and not yet acknowledged, with what its acknowledgement releases."""

    frames: list[bytes]
    identity: bytes   # the tile's sender, told "done" on the ack (empty: nobody to tell)
    done: bytes
    sent_at: float
    sends: int = 1
    outcome: Outcome = OK
    #: When it was first sent: ``sent_at`` moves with every resend, and the age of the oldest result
    #: (``oldest_s``) measured from it never passed ``timeout_s`` however long the ground was away.
    first_sent_at: float = 0.0


class AwaitingGround:
    """The ledger of results the ground has not acknowledged yet (thread-safe)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._items: OrderedDict[Key, Waiting] = OrderedDict()
        self._lock = threading.Lock()

    def sent(self, key: Key, frames: list[bytes], identity: bytes, done: bytes, outcome: Outcome = OK) -> bool:
        """Record a result just sent; False when one for this key is already waiting (a duplicate
        result: the first one's acknowledgement releases the tile)."""
        with self._lock:
            if key in self._items:
                return False
            now = time.monotonic()
            self._items[key] = Waiting(frames, identity, done, now, outcome=outcome, first_sent_at=now)
            return True

    def acked(self, key: Key) -> Waiting | None:
        """The entry the ground acknowledged, removed; None for an unknown or repeated ack."""
        with self._lock:
            return self._items.pop(key, None)

    def due(self) -> list[tuple[Key, Waiting]]:
        """Entries sent longer than ``timeout_s`` ago (oldest first), left as they are: the sender
        marks each one :meth:`resent` only once the results socket has taken it again.

        The ledger is kept in order of last sending (a resent entry moves to the end), so this
        reads only the overdue head: it runs after every result the runtime sends."""
        now = time.monotonic()
        out = []
        with self._lock:
            for key, item in self._items.items():
                if now - item.sent_at < self.timeout_s:
                    break
                out.append((key, item))
        return out

    def resent(self, key: Key) -> None:
        """``key``'s result was just sent again: it is not overdue for another ``timeout_s``."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                item.sent_at, item.sends = time.monotonic(), item.sends + 1
                self._items.move_to_end(key)

    def give_up(self) -> list[Waiting]:
        """Every entry, removed (at shutdown, after the grace period)."""
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def report(self) -> dict[str, Any]:
        with self._lock:
            oldest = min((i.first_sent_at for i in self._items.values()), default=None)
            return {"awaiting_ground": len(self._items),
                    "oldest_s": None if oldest is None else round(time.monotonic() - oldest, 3)}


class ResultSender:
    """The sender thread: owns the results socket (and the acks socket) and sends each result in
    completion order, then tells the tile's sender "done" at once or, with ground acknowledgement,
    once the ground has acknowledged it (:class:`AwaitingGround`).

    ``counted(name, n)``, ``say(event, **fields)`` and ``released()`` (a tile's result has left or
    been given up on: it is no longer inside the runtime) are the runtime's; "done" frames go to the
    main loop over the inproc PAIR ``notify_endpoint``, since the main loop owns the tile socket.
    A tile whose sender wants no "done" (an empty ``done`` frame) is handed to
    ``delivered(key, outcome)`` instead, here: the main loop is not woken for it.

    ``max_ack_bytes`` bounds an ack's JSON frame before it is parsed (``[limits] max_header_bytes``, as
    a tile's header and a command's are bounded): parsing JSON takes up to 23 bytes of memory per byte,
    and an ack is under 1 KiB. One over it is a bad ack (``bad_acks``), refused unparsed; None: no
    bound (a rig that tests the sender alone).

    A bug met while handling one result must not end the thread (every later tile would be acked
    and never answered): it is logged, counted and said as an ``internal_error`` event, and the
    tile leaves the runtime, its sender told it was rejected (``internal_error``) if its result
    never went out.
    """

    def __init__(self, ctx: zmq.Context, results: zmq.Socket, acks: zmq.Socket | None, notify_endpoint: str,
                 ack_timeout_s: float, counted: Callable[..., None], say: Callable[..., None],
                 released: Callable[[], None], delivered: Callable[[Key, Outcome], None] | None = None,
                 max_ack_bytes: int | None = None):
        self._max_ack_bytes = max_ack_bytes
        self._ctx, self._results, self._acks, self._notify_endpoint = ctx, results, acks, notify_endpoint
        self._counted, self._say, self._released = counted, say, released
        self._delivered = delivered
        # What is to be sent, and the condition the thread sleeps on: a put may leave it asleep (wake=False)
        # while a vectorise worker is still on its batch, so that it is woken once a batch, not once a tile.
        self._queue: deque[tuple[list[bytes] | None, bytes, bytes, Any, Outcome] | None] = deque()
        self._ready = threading.Condition()
        self.awaiting = AwaitingGround(ack_timeout_s)
        self.beat = Heartbeat("output")
        self._stop_deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, frames: list[bytes] | None, identity: bytes, done: bytes, key: Any, outcome: Outcome = OK,
            wake: bool = True) -> None:
        """A result to send; ``identity`` and ``done`` tell its tile's sender, ``key`` identifies it
        to the ground's acknowledgement (empty identity, None key: a rejection nobody waits for),
        ``outcome`` is what its "done" says, remembered for a resend of the tile. ``frames`` None: a
        tile no result could be made for (a last resort): released and its sender told, nothing sent.
        ``wake=False``: more are coming at once (a vectorise worker's batch), and :meth:`wake` follows
        them; the thread looks every :data:`LOOK_S` all the same, so a wake that never comes delays a
        result by that much, never loses it."""
        with self._ready:
            self._queue.append((frames, identity, done, key, outcome))
            if wake:
                self._ready.notify()

    def wake(self) -> None:
        """Send what was put with ``wake=False``."""
        with self._ready:
            if self._queue:
                self._ready.notify()

    def depth(self) -> int:
        return len(self._queue)

    def report(self) -> dict[str, Any]:
        return {"ground_ack": self._acks is not None, **self.awaiting.report()}

    def stop(self, grace_s: float) -> None:
        """Send what is queued; results no ground takes within ``grace_s`` are given up on."""
        self._stop_deadline = time.monotonic() + grace_s
        with self._ready:
            self._queue.append(None)
            self._ready.notify()
        self._thread.join()

    def _run(self) -> None:
        """Owns the results socket (and the acks socket): sends each result, then either tells the
        tile's sender "done" at once or, with ground_ack, once the ground has acknowledged it."""
        notify = self._ctx.socket(zmq.PAIR)
        # Unbounded, as the main loop's end (Runtime.__init__): a "done" sent here must never block,
        # since the main loop reads none while it waits for this thread to stop.
        notify.setsockopt(zmq.SNDHWM, 0)
        notify.connect(self._notify_endpoint)
        while True:
            with self._ready:
                if not self._queue:
                    self._ready.wait(LOOK_S)
                item = self._queue.popleft() if self._queue else ()
            if item is None:
                break
            # The heartbeat covers the whole pass, not the send alone: a pass stuck on taking an ack,
            # releasing a tile or telling its sender looked idle to Health, which fed the watchdog while
            # no result left. Waiting for a ground to read is not a hang (_send_result ends it meanwhile).
            self.beat.begin(None)
            try:
                if item:
                    self._send_one(notify, *item)
                if self._acks is not None:
                    self._guarded(self._take_acks, notify)
                    self._guarded(self._resend_overdue)
            finally:
                self.beat.end()
        if self._acks is not None:  # at shutdown: the ground has until the grace deadline to ack
            while len(self.awaiting) and time.monotonic() < (self._stop_deadline or 0):
                self._acks.poll(100)
                self._guarded(self._take_acks, notify)
                self._guarded(self._resend_overdue)
            lost = self.awaiting.give_up()
            for _ in lost:
                self._released()
            if lost:
                self._counted("results_undeliverable", len(lost))
                self._say("results_undeliverable", detail=f"{len(lost)} results unacknowledged by the ground at "
                                                            "shutdown: their senders resend the tiles")
        notify.close()

    def _send_one(self, notify: zmq.Socket, frames: list[bytes] | None, identity: bytes, done: bytes, key: Any,
                  outcome: Outcome = OK) -> None:
        """Send one result and release or ledger its tile; a bug met on the way is the tile's, not
        the thread's: every tile is still released once and its sender answered once. ``frames`` None:
        there is no result to send (:meth:`put`), the tile is released and its sender told at once."""
        inside = True  # the tile counts in max_tiles_inside until released here or ledgered
        stage = "sending"  # then "sent" (the result is out), then "told" (its sender answered)
        try:
            if frames is None:  # nothing for a ground to have or acknowledge: its sender must not wait for it
                inside = False
                self._released()
                stage = "told"
                self._finished(notify, identity, done, key, outcome)
                return
            sent = self._send_result(frames)
            if not sent:
                inside = False
                self._released()
                return  # no "done": the sender keeps the tile and resends it to the next runtime
            stage = "sent"
            self._counted("results_sent")
            if self._acks is not None and key is not None:
                if self.awaiting.sent(key, frames, identity, done, outcome):
                    inside = False
                    return  # inside until the ground acks it (runtime/delivery.py)
            inside = False
            self._released()
            stage = "told"  # set first: a "done" that fails to go is not tried twice
            self._finished(notify, identity, done, key, outcome)
        except Exception as exc:
            self._fault("sending a result", exc, key)
            if inside:
                self._released()
            if stage == "sending":  # its result never went out: the tile was rejected, say so
                outcome = ("rejected", protocol.Reason.INTERNAL_ERROR.value)
                done = _with_outcome(done, outcome)
            if stage != "told":
                self._guarded(self._finished, notify, identity, done, key, outcome)

    def _guarded(self, handler: Callable[..., None], *args: Any) -> None:
        """Run one step of the loop; a bug it meets is logged and said, never the end of the thread."""
        try:
            handler(*args)
        except Exception as exc:
            self._fault(getattr(handler, "__name__", str(handler)), exc, None)

    def _fault(self, where: str, exc: BaseException, key: Any) -> None:
        """A bug met in this thread: logged with its traceback, counted, and raised as the
        ``internal_error`` event (WARNING_HI in runtime/interface.py: the sender goes on), naming the tile
        when there is one."""
        log.error("internal error in the sender thread (%s)", where, exc_info=exc)
        self._counted("internal_errors")
        ids = dict(zip(("scene_id", "tile_id", "checksum"), key)) if isinstance(key, tuple) and len(key) == 3 else {}
        self._say("internal_error", handler="sender", detail=f"{where}: {exc!r}", **ids)

    def _take_acks(self, notify: zmq.Socket) -> None:
        while True:
            try:
                frames = self._acks.recv_multipart(zmq.NOBLOCK)  # type: ignore[union-attr]
            except zmq.Again:
                return
            try:
                limit = self._max_ack_bytes
                if limit is not None and len(frames[0]) > limit:  # never parsed, as an oversized tile header
                    raise ValueError(f"an ack frame of {len(frames[0])} bytes; at most {limit} "
                                     "([limits] max_header_bytes)")
                ack = protocol.loads(frames[0])
                # A list only: tuple() of a 3-character string or a 3-key object made a "key" too, an
                # ack that is not [scene_id, tile_id, checksum] passed over uncounted in bad_acks.
                key = tuple(ack["ack"]) if isinstance(ack["ack"], list) else ()
                if len(key) != 3 or not all(isinstance(k, str) for k in key):
                    raise ValueError(f"ack {ack['ack']!r} is not [scene_id, tile_id, checksum]")
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                self._counted("bad_acks")
                log.warning("bad ground ack: %s", exc)
                continue
            entry = self.awaiting.acked(key)  # type: ignore[arg-type]
            if entry is None:
                continue  # a second ack of a resent result, or a stranger's
            self._counted("results_acked")
            self._released()
            self._finished(notify, entry.identity, entry.done, key, entry.outcome)  # type: ignore[arg-type]

    def _finished(self, notify: zmq.Socket, identity: bytes, done: bytes, key: Key | None,
                  outcome: Outcome = OK) -> None:
        """A tile's result is delivered: its sender is told "done" through the main loop, or, if
        it asked not to be, the tile is remembered as done (with its outcome) here. An empty
        identity (a rejection nobody waits for) needs neither."""
        if identity and done:
            _tell(notify, identity, done, key, outcome)
        elif identity and key is not None and self._delivered is not None:
            self._delivered(key, outcome)

    def _resend_overdue(self) -> None:
        """Send the overdue results again, each only if the results socket takes it now.

        Why never wait here: a ground that stops reading fills the socket, and a sender waiting for
        room would take no acks and send no new result while its heartbeat (idle between items)
        told Health all was well. A result the socket does not take stays overdue (its resend is
        neither counted nor marked) and is tried again on the next pass of the loop; at shutdown it
        is given up on once, with the rest of the ledger.
        """
        for key, entry in self.awaiting.due():
            try:
                self._results.send_multipart(entry.frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                return  # full: the later ones would not go either
            self.awaiting.resent(key)
            self._counted("results_resent")

    def _send_result(self, frames: list[bytes]) -> bool:
        """Send one result; while no ground is connected (a PUSH then has nowhere to put it) wait,
        except when stopping, where after ``shutdown_grace_s`` the result is given up on (an event
        says how many): its tile was never reported done, so its sender resends it."""
        while True:
            try:
                self._results.send_multipart(frames, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                deadline = self._stop_deadline
                if deadline is not None and time.monotonic() > deadline:
                    self._counted("results_undeliverable")
                    self._say("results_undeliverable", detail="the results socket took no result by the shutdown "
                              "deadline (no ground connected, or it stopped reading): its sender resends the tile")
                    return False
                # Sleep until the socket can take the result (a ground connects or drains), but
                # wake now and then to see whether shutdown has set a deadline meanwhile. Waiting
                # for a ground is back-pressure, not a hang: the heartbeat is idle meanwhile, or
                # Health reported output hung and starved the watchdog whenever no ground was
                # connected for hang_timeout_s (a supervisor then killed a healthy payload).
                item = self.beat.item
                self.beat.end()
                try:
                    self._results.poll(100, zmq.POLLOUT)
                finally:
                    self.beat.begin(item)


def _tell(notify: zmq.Socket, identity: bytes, done: bytes, key: Key | None, outcome: Outcome = OK) -> None:
    """Hand a "done" to the main loop, which owns the tile socket and forwards it to the tile's
    sender: ``[identity, done, status, reason, *key]``. The outcome and the tile's key go with it so
    that the main loop can remember the tile as done, and how it ended, without decoding what was
    just encoded (:func:`read_told` reads them back)."""
    status, reason = outcome
    notify.send_multipart([identity, done, status.encode(), (reason or "").encode(),
                           *(k.encode(ID_ENCODING, "surrogatepass") for k in key or ())])


def read_told(frames: list[bytes]) -> tuple[bytes, bytes, Key | None, Outcome]:
    """What :func:`_tell` sent: identity, "done" frame, the tile's key (None if it had none) and
    its outcome. Ids are decoded exactly as they were encoded, so any key round-trips."""
    identity, done, status, reason, *key = frames
    ids = tuple(k.decode(ID_ENCODING, "surrogatepass") for k in key)
    return identity, done, ids or None, (status.decode(), reason.decode() or None)  # type: ignore[return-value]


def _with_outcome(done: bytes, outcome: Outcome) -> bytes:
    """``done`` (a "done" frame, or empty for a sender that wants none) saying ``outcome`` instead."""
    if not done:
        return done
    status, reason = outcome
    return protocol.encode_done({**protocol.loads(done), "status": status, "reason": reason})


#: How ids travel from the sender thread to the main loop: UTF-8, with "surrogatepass" so that
#: even an id no UTF-8 encoder takes (protocol.decode_tile refuses those) cannot fail here.
ID_ENCODING = "utf-8"
