"""The vectorise workers: device outputs become result frames while the device computes later tiles.

A worker stuck on one tile (a pathological output, a GDAL call that never returns) can be restarted
by the Health component: its tile goes to a fresh worker, and whatever the stuck one produces later
is discarded, so each tile's result is delivered once. A tile that gets a second worker stuck too
is not handed on again (it would stall the workers forever): ``give_up`` makes its result instead,
a rejection that says why. The queue in front of the workers holds at
most what the runtime has let inside (``max_tiles_inside``).

A worker takes its tiles in batches (``batch``, waiting at most ``batch_wait_s`` for the batch to
fill) and vectorises them back to back: between two tiles OpenVINO's streams sweep the caches of
the worker's core, and Python that starts cold on each tile costs about three times what it costs
warm (docs/throughput.md, "Why Python costs three times more inside the serving process"). A tile
then waits up to ``batch_wait_s`` longer for its result, but only while tiles come fast enough to
fill a batch within that wait (the last ``batch - 1`` came within ``batch_wait_s``): slower than
that the device is not the bottleneck, a batch could not fill anyway, and each tile is taken at
once with whatever is already queued. ``batch = 1`` takes each tile at once always. Nor does a
worker wait for tiles that are not coming: given ``upstream`` (how many items are on their way to
the pool: the runtime's tiles on the device), it stops waiting once that is 0 and takes what is
queued. Before, the last batch of a pass waited out the whole ``batch_wait_s`` with every core idle,
and the last vessels of a pass reached the ground that much later (docs/throughput.md, "No wait for
tiles that are not coming": about 4% of the CPU idle in rounds of 300 tiles). A worker filling a
batch sleeps until the queue holds what the batch still needs, nothing more is on its way, or the wait
is out: it used to wait on the queue itself and be woken by every tile, ``batch - 1`` wake-ups a batch,
each a context switch and a turn of the GIL beside OpenVINO's streams (docs/throughput.md, "One
wake-up a batch").

A ``work`` that raises (a bug: the runtime's own catches what an output can make it raise) ends
neither the worker nor the item: the item is answered as ``failed(item, error)`` makes it, and the
worker goes on with the rest of its batch. It used to end the thread: the item and the rest of its
batch waited for Health to take the dead worker for a stuck one, and at shutdown, where a dead
thread is not waited for, they were never answered.

A ``deliver`` that raises (a bug in what sends a result onwards) ends neither the worker nor the item
either: ``deliver`` raises only before the result has left (the runtime's queues it last), so the item
is answered as a raising ``work`` is, ``failed(item, DeliverFailed(...))``, delivered once more. It used to
end the thread, as above.

An item that cannot be answered at all (``failed`` raised, or so did the ``deliver`` of its answer, or a
``give_up`` raised with no ``failed`` to fall back on, or there is neither) is handed to ``lost(item,
error)``, the caller's last resort, and never tried a third time: the runtime still releases and counts
its tile there. Before, such an item was only logged and the runtime's tile stayed inside for ever; a
``failed`` that raised on a ``work`` error ended the worker, and a ``give_up`` that raised in a restart
reached Health's thread (tests/runtime/test_post_processing_review21.py).

A worker that dies all the same (a BaseException, or a bug in the pool's own queue handling) is seen:
each probe says whether its worker is dead (``StageProbe.dead``), and Health restarts a dead worker as
it restarts a stuck one (``stage_dead``, then ``stage_restarted``, counted). The items it had taken
from the queue are handed to the fresh one (the one it was on as a stuck one's is: once, then given
up on), and :meth:`VectorisePool.stop` restarts a dead worker too, so shutdown answers them. Before,
a worker that died idle looked idle for ever: its items, and with one worker every later one, were
never answered, and Health fed the watchdog. (One window is left: an asynchronous exception, which
Python raises between any two bytecodes, landing between the queue's ``get`` and the worker's list
loses that item; only ``PyThreadState_SetAsyncExc`` raises one there.)

Length: one class, kept whole because its parts share one lock and one invariant (each item answered
once, whichever worker, restart or shutdown answers it): batching, restarts, shutdown and the failure
paths would each need the others' state if split.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import rasterio

from runtime.health import Heartbeat, StageProbe

log = logging.getLogger("runtime")

Item = TypeVar("Item")
Result = TypeVar("Result")


#: How many times :meth:`VectorisePool.stop` restarts a worker found dead before giving up on its
#: items: one that dies at every start (its GDAL environment cannot open) would loop for ever.
SHUTDOWN_RESTARTS = 3


class DeliverFailed(Exception):
    """The error ``failed`` is told of for an item whose result was made but whose ``deliver`` raised
    (its ``__cause__``): so that ``failed`` can say which step failed. ``deliver`` raises only before
    the result has left, so the result ``failed`` makes is the item's one answer."""


class VectorisePool(Generic[Item, Result]):
    """``workers`` threads running ``work(item)`` on each queued item, then ``deliver(item, result)``
    (under the pool's lock, and only if that worker was not restarted meanwhile). ``failed(item,
    error)`` makes the result of an item whose ``work``, ``deliver`` (the error is then a
    :class:`DeliverFailed`) or ``give_up`` raised; without it ``give_up(item)`` does. An item none of
    them can answer goes to ``lost(item, error)`` (without it, it is only logged). ``deliver`` must raise
    only before the result has left, and before it has counted anything. ``upstream()``: how many items
    are on their way to :meth:`put`; an item must stop counting there before it is put, so that a worker
    woken by the last one sees 0 and does not wait for more (without ``upstream``, a batch that cannot
    fill waits out ``batch_wait_s``). ``after_batch()``: called once a worker has delivered its batch, and
    after a give-up's delivery, so that what ``deliver`` hands on can wait for it (the runtime's sender
    thread is woken once a batch, not once a tile)."""

    def __init__(self, workers: int, work: Callable[[Item], Result], deliver: Callable[[Item, Result], None],
                 give_up: Callable[[Item], Result] | None = None, batch: int = 1, batch_wait_s: float = 0.0,
                 failed: Callable[[Item, Exception], Result] | None = None,
                 lost: Callable[[Item, Exception], None] | None = None,
                 upstream: Callable[[], int] | None = None, after_batch: Callable[[], None] | None = None):
        if int(workers) < 1 or int(batch) < 1 or not batch_wait_s >= 0:  # "not >=": a NaN wait is refused too
            raise ValueError(f"workers and batch must be >= 1 and batch_wait_s >= 0; "
                             f"got {workers}, {batch}, {batch_wait_s}")
        self.size = int(workers)
        self.batch, self.batch_wait_s = int(batch), float(batch_wait_s)
        self._work, self._deliver, self._give_up, self._failed = work, deliver, give_up, failed
        self._lost = lost
        self._upstream = upstream
        self._after_batch = after_batch
        self._held: list[list[Item | None]] = []  # per worker: its batch's items not yet delivered
        self._handed_on: set[int] = set()  # id() of the items already given to a fresh worker once
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        # Items (not stop signals) in the queue, kept under the lock: a worker that takes a stop
        # signal ends only when none is left, so an item handed back behind a stop is still done.
        self._queued = 0
        # Items and stop signals queued so far, and what each worker filling a batch still needs:
        # a worker waits for its batch on _filled, woken once the batch can fill (or when nothing more
        # is on its way), not by every item as a wait on the queue itself is.
        self._puts = 0
        self._needs: list[int] = []
        self._stopping = False
        # When the last batch - 1 items were put: the pace that decides whether a batch is waited for.
        self._recent: collections.deque[float] = collections.deque(maxlen=max(1, self.batch - 1))
        self._beats: list[Heartbeat] = []
        self._threads: list[threading.Thread] = []
        # Per worker: whether its current thread ended as it should (on a stop signal). A current thread
        # not alive that did not is dead, and is restarted (by Health, or by stop()).
        self._ended: list[bool] = []
        self._lock = threading.Lock()
        self._filled = threading.Condition(self._lock)

    def start(self) -> None:
        with self._lock:  # under the lock: a probe must not see a worker not yet started as dead
            for i in range(self.size):
                self._start(i)

    def put(self, item: Item) -> None:
        self._recent.append(time.monotonic())
        # Read before the lock (upstream takes the caller's): the item stopped counting there already.
        last = self._upstream is not None and self._upstream() <= 0
        with self._lock:
            self._enqueue(item, last=last)

    def _enqueue(self, item: Item | None, last: bool = False) -> None:
        """Queue an item or a stop signal (None); the caller holds the lock. A worker waiting for its
        batch is woken when the queue holds what it needs, on a stop signal, or when ``last`` (nothing
        more is on its way)."""
        if item is not None:
            self._queued += 1
        self._queue.put(item)
        self._puts += 1
        if self._needs and (last or item is None or self._queue.qsize() >= min(self._needs)):
            self._filled.notify_all()

    def batch_fills_in_time(self) -> bool:
        """Whether tiles come fast enough for a batch to fill within ``batch_wait_s``: the last
        ``batch - 1`` were put within it. (So the first tiles of a pass, and a burst shorter than a
        batch, are not held for tiles that may not follow.)"""
        recent = list(self._recent)  # a copy: put() appends from another thread
        return len(recent) == self._recent.maxlen and time.monotonic() - recent[0] <= self.batch_wait_s

    def depth(self) -> int:
        """Items waiting for a worker, in the queue or in a worker's batch."""
        with self._lock:
            held = sum(max(0, len(h) - 1) for h in self._held)
        return self._queue.qsize() + held

    def probes(self) -> list[StageProbe]:
        """One Health probe per worker: how long it has been on its item, how to restart it, and
        whether it is dead (which Health treats as a hang: else a worker that died idle looked idle)."""
        return [StageProbe(f"vectorise-{i}", lambda i=i: self._beats[i].age() if self._beats else 0.0,
                           lambda i=i: self.restart(i), dead=lambda i=i: self.dead(i)) for i in range(self.size)]

    def dead(self, i: int) -> bool:
        """Whether worker ``i``'s thread has ended without being told to (see :meth:`_dead`)."""
        with self._lock:
            return self._dead(i)

    def _dead(self, i: int) -> bool:
        """:meth:`dead` under the lock. Not started yet is not dead; ended on a stop signal is not."""
        return i < len(self._threads) and not self._threads[i].is_alive() and not self._ended[i]

    def restart(self, i: int) -> None:
        """Hand worker ``i``'s item to a fresh worker; the stuck one's result will be discarded.
        An item that was handed on once already is delivered as ``give_up`` makes it instead."""
        with self._lock:
            self._restart(i, give_up_now=False)

    def _restart(self, i: int, give_up_now: bool) -> None:
        """:meth:`restart` under the lock; ``give_up_now`` answers the item with ``give_up`` even on
        its first hang (at shutdown, where nothing else would ever answer it)."""
        item = self._beats[i].item
        # The rest of its batch waits for the fresh worker: every held item but the one it is on. (Not
        # held[1:]: between two items of a batch none is begun, and held[0] is the next one, not done.)
        for later in self._held[i]:
            if later is not item:
                self._enqueue(later)
        if item is not None:
            if (give_up_now or id(item) in self._handed_on) and self._give_up is not None:
                self._handed_on.discard(id(item))
                self._give_up_on(i, item)
            else:
                self._handed_on.add(id(item))
                self._enqueue(item)
        if self._stopping:
            # The stuck worker never took its stop signal: the fresh one needs one of its own.
            # (Items queued behind the stop signals are still done: see _run.)
            self._enqueue(None)
        self._start(i)

    def stop(self, stuck_s: float = 60.0) -> None:
        """Let the workers finish what is queued, then end them.

        Why not just join the workers: Health may restart a stuck worker meanwhile, and the thread
        to wait for is then the fresh one (the stuck one may never return). So this waits for the
        current workers, whichever they are, and a worker on one item for ``stuck_s`` has that
        item answered with ``give_up`` (as a second hang is) and is replaced: every accepted item
        is delivered or given up on, and shutdown never waits forever.
        """
        with self._lock:
            self._stopping = True
            for _ in range(self.size):
                self._enqueue(None)
        deaths = [0] * self.size
        while True:
            with self._lock:
                for i in range(self.size):
                    if not self._dead(i):
                        continue
                    deaths[i] += 1
                    if deaths[i] <= SHUTDOWN_RESTARTS:  # its items, and those queued, need a live worker
                        log.error("vectorise worker %d found dead at shutdown: restarted", i)
                        self._restart(i, give_up_now=False)
                    else:  # it dies at every start: restarting it again would loop for ever
                        log.error("vectorise worker %d died %d times at shutdown: its items are given up on",
                                  i, deaths[i])
                        self._abandon(i)
                live = [(i, t) for i, t in enumerate(self._threads) if t.is_alive()]
                if not live:
                    self._give_up_queued()  # every worker abandoned: nothing else will answer them
            if not live:
                return
            for i, thread in live:
                thread.join(0.05)
                with self._lock:
                    if self._threads[i] is thread and thread.is_alive() and self._beats[i].age() >= stuck_s:
                        self._restart(i, give_up_now=True)

    def _abandon(self, i: int) -> None:
        """At shutdown, worker ``i`` (dead, and dead again after every restart) is given up: its held items
        are answered with ``give_up`` (or logged without one), and it counts as ended."""
        for item in self._held[i]:
            self._answer_given_up(i, item)
        self._held[i], self._ended[i] = [], True

    def _give_up_queued(self) -> None:
        """Answer with ``give_up`` every item still queued when no worker is left to take it."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._queued -= 1
                self._answer_given_up(-1, item)  # -1: no worker's

    def _answer_given_up(self, i: int, item: Item) -> None:
        """At shutdown: ``item``, which no worker will take, answered by ``give_up`` (else lost)."""
        self._handed_on.discard(id(item))
        if self._give_up is None:
            self._lose(i, item, RuntimeError("abandoned at shutdown, and no give_up"))
            return
        self._give_up_on(i, item)

    def _give_up_on(self, i: int, item: Item) -> None:
        """Deliver what ``give_up`` makes of ``item``. A ``give_up`` that raises (a bug) has the item
        answered as a raising ``work``'s is (:meth:`_fail`): it must not reach the restart's caller
        (Health's thread, or stop()) with the item unanswered."""
        try:
            result = self._give_up(item)  # type: ignore[misc]
        except Exception as exc:
            log.error("vectorise worker %d: give_up raised on an item", i, exc_info=exc)
            self._fail(i, item, exc)
        else:
            self._deliver_or_fail(i, item, result)
        self._batch_done()  # whichever thread gave up (Health's, stop()'s): its answer is not held

    def _start(self, i: int) -> None:
        beat = Heartbeat(f"vectorise-{i}")
        thread = threading.Thread(target=self._run, args=(i, beat), name=beat.name, daemon=True)
        if i < len(self._beats):
            self._beats[i], self._threads[i], self._held[i], self._ended[i] = beat, thread, [], False
        else:
            self._beats.append(beat)
            self._threads.append(thread)
            self._held.append([])
            self._ended.append(False)
        thread.start()

    def _run(self, i: int, beat: Heartbeat) -> None:
        """Worker ``i``'s thread: :meth:`_serve` until a stop signal, or until it dies (:meth:`_died`)."""
        taken: list[Item | None] = []  # what _take got from the queue and _serve does not hold yet
        try:
            # One GDAL environment for the worker's life: each rasterio.features call otherwise opens
            # and closes its own (a measurable share of a tile's host time).
            with rasterio.Env():
                self._serve(i, beat, taken)
        except BaseException as exc:  # the thread ends either way: what it took must not go with it
            self._died(i, beat, taken, exc)

    def _died(self, i: int, beat: Heartbeat, taken: list[Item | None], exc: BaseException) -> None:
        """Worker ``i`` died of ``exc`` (logged). The items it had taken from the queue but not yet held
        join its held ones, which the restart that its death calls for (Health's, or stop()'s) hands on.
        A worker restarted meanwhile (stuck, then dead) puts them back itself: none will restart it."""
        log.error("vectorise worker %d died; Health restarts it", i, exc_info=exc)
        with self._lock:
            # A stop signal it took is not kept: a restart while stopping gives the fresh worker its own.
            items = [item for item in taken if item is not None]
            if self._beats[i] is beat:
                self._queued -= len(items)
                self._held[i] = [*self._held[i], *items]
            else:
                for item in items:
                    self._queue.put(item)  # still counted in _queued: _serve had not taken it out

    def _serve(self, i: int, beat: Heartbeat, taken: list[Item | None]) -> None:
        """Worker ``i``'s loop: take a batch into ``taken``, hold it, work and deliver each item."""
        while True:
            taken.clear()
            self._take(taken)
            with self._lock:
                items = list(taken)
                taken.clear()  # held from here (or handed back), so no longer only in taken
                self._queued -= sum(item is not None for item in items)
                if self._beats[i] is not beat:  # restarted meanwhile (never while idle and alive): hand back
                    for item in items:
                        self._enqueue(item)
                    return
                self._held[i] = items
            for n, item in enumerate(items):
                if item is None:
                    with self._lock:
                        if self._beats[i] is not beat:
                            return
                        if self._queued == 0:
                            self._ended[i] = True  # ended as told: not dead
                            self._batch_done()  # what it delivered before the stop signal
                            return
                        # Items were handed back behind this stop signal (a restart while
                        # stopping): do them first, and leave the signal for later.
                        self._enqueue(None)
                    break
                beat.begin(item)
                error: Exception | None = None
                try:
                    result: Result | None = self._work(item)
                except Exception as exc:  # a bug: the item is answered, the worker lives on
                    result, error = None, exc
                with self._lock:
                    if self._beats[i] is not beat:
                        # restarted while stuck: the item and the rest went to the new worker, which
                        # answers it; failed (which the runtime counts and says) is not asked here
                        if error is not None:
                            log.error("vectorise worker %d, restarted meanwhile: work raised on an item",
                                      i, exc_info=error)
                        return
                    if error is not None:
                        log.error("vectorise worker %d: work raised on an item", i, exc_info=error)
                        self._fail(i, item, error)
                    else:
                        self._deliver_or_fail(i, item, result)  # type: ignore[arg-type]
                    self._handed_on.discard(id(item))
                    self._held[i] = items[n + 1:]
                    beat.end()
            self._batch_done()

    def _batch_done(self) -> None:
        """``after_batch()``; a bug in it is logged, never the end of a worker or a restart."""
        if self._after_batch is None:
            return
        try:
            self._after_batch()
        except Exception as exc:
            log.error("vectorise pool: after_batch raised", exc_info=exc)

    def _deliver_or_fail(self, i: int, item: Item, result: Result) -> None:
        """``deliver(item, result)``, under the lock. A ``deliver`` that raises (a bug) has not
        delivered: the item is answered as a raising ``work``'s is (:meth:`_fail`), with a
        :class:`DeliverFailed`."""
        try:
            self._deliver(item, result)
            return
        except Exception as exc:
            log.error("vectorise worker %d: deliver raised on an item", i, exc_info=exc)
            failure = DeliverFailed(f"deliver raised {exc!r}")
            failure.__cause__ = exc
        self._fail(i, item, failure)

    def _fail(self, i: int, item: Item, error: Exception) -> None:
        """Answer ``item``, whose ``work``, ``deliver`` or ``give_up`` raised ``error``, with what
        :meth:`_after_failure` makes, delivered once. If that raises too (the same bug would raise a
        third time), or nothing can make it, the item is :meth:`_lose`'s."""
        try:
            answer, answered = self._after_failure(item, error)
            if answered:
                self._deliver(item, answer)  # type: ignore[arg-type]
                return
        except Exception as exc:
            log.error("vectorise worker %d: an item whose work, deliver or give_up raised could not be answered",
                      i, exc_info=exc)
            error = exc
        self._lose(i, item, error)

    def _lose(self, i: int, item: Item, error: Exception) -> None:
        """The last resort for an item nothing else could answer: ``lost(item, error)``, which frees it
        (the runtime releases and counts its tile). Never raises: its caller is a worker, Health's
        thread (a restart) or stop()."""
        if self._lost is None:
            log.error("vectorise worker %d: an item was never answered (no lost)", i, exc_info=error)
            return
        try:
            self._lost(item, error)
        except Exception as exc:
            log.error("vectorise worker %d: lost raised on an item, which is never answered", i, exc_info=exc)

    def _after_failure(self, item: Item, exc: Exception) -> tuple[Result | None, bool]:
        """The result of ``item``, whose ``work``, ``deliver`` or ``give_up`` raised ``exc``, and whether there is one
        to deliver: ``failed`` makes it, else ``give_up``, else there is none. Called under the lock, as
        ``deliver`` and ``give_up`` are, and only while the worker is the current one: a worker restarted
        meanwhile has handed its item on, and its late exception is only logged."""
        if self._failed is not None:
            return self._failed(item, exc), True
        if self._give_up is not None:
            return self._give_up(item), True
        return None, False

    def _take(self, items: list[Item | None]) -> None:
        """Into ``items``: the next item, and up to ``batch - 1`` more that come within ``batch_wait_s``,
        or that are queued already when tiles come too slowly to fill a batch or none is on its way
        (``upstream``; a None, the signal to stop, ends the batch). Into the caller's list as each is
        taken, not returned at the end: a worker that dies in here still has them (:meth:`_died`)."""
        items.append(self._queue.get())
        deadline = time.monotonic() + (self.batch_wait_s if self.batch_fills_in_time() else 0.0)
        while len(items) < self.batch and items[-1] is not None:
            seen = self._puts
            try:
                items.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0 or (self._upstream is not None and self._upstream() <= 0):
                break  # out of time, or nothing is on its way: what is queued is the whole batch
            need = self.batch - len(items)
            with self._lock:
                if self._puts != seen:
                    continue  # queued since the queue was found empty: taken first, then waited for
                self._needs.append(need)
                try:
                    self._filled.wait(left)
                finally:
                    self._needs.remove(need)


__all__ = ["DeliverFailed", "VectorisePool"]
