"""Device recovery: a failed inference is re-run, a lost device is reopened or replaced.

Why: a Myriad X on USB can be reset or unplugged in flight (the plugin then fails every request,
NC_ERROR / XLink errors), and before this component only the watchdog would have noticed while every
tile in flight was rejected. Now a failed request puts its tile here, with its input still held:

1. it is re-run after a back-off (``backoff_s``, doubled per consecutive failure, at most
   ``max_backoff_s``) on whatever device is serving then;
2. after ``reopen_after`` consecutive failures, still so once the back-off has passed (an inference
   that succeeded meanwhile ended the streak), the device is reopened (a new adapter: recompiled,
   or imported from the bundle's blob); if that fails and ``fallback_device`` is set, the model is
   served on that device instead (the twin, or the CPU), and an event says so;
3. a tile that failed ``max_attempts`` times is rejected with ``inference_failed``: accounted for,
   never lost, never run twice to completion.

A request refused for its own input (OpenVINO's complaint that the tensor does not fit the compiled
model, told by ``refused_input``) is not a failure of the device: its tile is given up at once as an
:class:`InputRefused` (the same input would be refused again), and neither the streak nor the device's
error count grows. Until review 26 a re-run so refused lengthened the streak and reopened a device that
worked (tests/runtime/test_input_refused_review26.py).

Any success resets the streak. A reopen starts a fresh count towards the next reopen, but not the
clock of the streak (``failing_for``): a device that reopens and then fails every request is still
lost, and the Health probe must see it. The probe reads that clock only while recovery holds a tile
(failed, and neither run again to completion nor given up): a payload idle after giving up its tiles,
its device reopened or replaced meanwhile, has nothing stuck on the device, and until 2026-12-05 it
starved the watchdog for ever (tests/runtime/test_device_idle_review19.py). The clock is kept while
idle, so the next tile a still-lost device fails shows it lost at once. Events: ``device_error``
(each failure), ``device_reopened``, ``device_replaced``, ``device_reopen_failed``; the state is in
``status()["device_recovery"]``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Back-off doublings past which the delay is ``max_backoff_s`` anyway: the streak of a device that
#: stays lost grows without bound, and 2 ** 1024 does not fit a float.
MAX_DOUBLINGS = 60

#: The component's interface, F´-style: what it is told, what it does, what it reports.
PORTS = {
    "failed(job, error)": "in: an inference failed; the job holds its input",
    "succeeded(job)": "in: an inference completed; the failure streak ends, and the job is held here no more",
    "replaced_at_load()": "in: a model load opened on the fallback device, its own being gone",
    "resubmit(job)": "out: run the job again on the serving adapter (may raise: the device refused it, a "
                     "failure of the device; CannotRun: the job itself cannot run, given up and not "
                     "counted against the device)",
    "reopen() -> (device, replaced)": "out: a new serving adapter, on the fallback device if the "
                                      "device itself cannot be opened (replaced); raises if neither opens",
    "give_up(job, error)": "out: the job is rejected (inference_failed) through the normal result path",
    "refused_input(job, error) -> str | None": "out: why the device refused the job's own input (not a failure "
                                               "of the device), or None",
}
EVENTS = {
    "device_error": "WARNING_HI",
    "device_reopened": "ACTIVITY_HI",
    "device_replaced": "WARNING_HI",
    "device_reopen_failed": "WARNING_HI",
    "device_recovery_error": "WARNING_HI",
}


class CannotRun(Exception):
    """Raised by ``resubmit`` for a job that nothing serving now can run (a model loaded since takes
    another input, or preparing the tile again met a bug): it is given up, not retried, and says
    nothing about the device (only what the device raises counts towards a reopen)."""


class InputRefused(CannotRun):
    """Why a job was given up: the device refused its input (the tensor does not fit the compiled model).
    The job's own fault, not the device's: it is not retried (the same input would be refused again)
    and not counted against the device. Its ``__cause__`` is what the device raised."""


class DeviceRecovery:
    """Retries failed inferences with back-off and reopens the device after a streak of failures."""

    def __init__(self, settings: dict[str, Any], resubmit: Callable[[Any], None],
                 reopen: Callable[[], tuple[str, bool]],
                 give_up: Callable[[Any, BaseException], None], event: Callable[..., None],
                 refused_input: Callable[[Any, BaseException], str | None] | None = None):
        """``refused_input(job, error)``: why ``error`` is the device's refusal of the job's own input,
        or None (the error may be the device's); without it every error counts against the device."""
        self._refused_input = refused_input
        self.max_attempts = int(settings["max_attempts"])
        self.backoff_s = float(settings["backoff_s"])
        self.max_backoff_s = float(settings["max_backoff_s"])
        self.reopen_after = int(settings["reopen_after"])
        self._resubmit, self._reopen, self._give_up, self._event = resubmit, reopen, give_up, event
        # Each failed job with its error and the monotonic time it failed at (its back-off runs from then).
        self._queue: queue.SimpleQueue[tuple[Any, BaseException, float] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._pending = 0          # jobs handed here and not yet resubmitted or given up
        self._streak = 0           # consecutive failures since the last success or reopen
        # Monotonic time of the first failure since the last success; a reopen does not reset it.
        self._streak_since: float | None = None
        # id() of each job failed and neither completed since nor given up: while there is none the
        # device has nothing stuck on it, and the Health probe answers (failing_for).
        self._held: set[int] = set()
        self.counts = {"errors": 0, "retries": 0, "reopened": 0, "replaced": 0, "given_up": 0}
        self._thread = threading.Thread(target=self._loop, name="device-recovery", daemon=True)
        self._thread.start()

    def failed(self, job: Any, error: BaseException, stale: bool = False) -> None:
        """A request failed: its job comes here (from the adapter's collecting thread).

        ``stale``: it ran on a device already replaced; it is re-run, but says nothing about the
        device serving now, so it does not lengthen the streak (or trigger another reopen).

        A request refused for its own input (``refused_input``) is no failure of the device: the job is
        queued to be given up as an :class:`InputRefused`, and no count or streak grows."""
        refusal = self._refusal(job, error)
        if refusal is not None:
            with self._lock:
                self._pending += 1  # given up by the recovery thread, as any job handed here is
            self._queue.put((job, refusal, time.monotonic()))
            return
        with self._lock:
            self._pending += 1
            self._held.add(id(job))
            if not stale:
                self._streak += 1
                if self._streak_since is None:
                    self._streak_since = time.monotonic()
            self.counts["errors"] += 1
            streak = self._streak
        self._emit("device_error", detail=f"{type(error).__name__}: {error}", attempt=getattr(job, "attempts", 1),
                   consecutive_failures=streak)
        self._queue.put((job, error, time.monotonic()))

    def _refusal(self, job: Any, error: BaseException) -> InputRefused | None:
        """``error`` as an :class:`InputRefused` if it is the device's refusal of ``job``'s own input, else
        None. A ``refused_input`` that raises (a bug) leaves the error the device's, as before it existed:
        a bug here must not hide a lost device."""
        if self._refused_input is None or isinstance(error, CannotRun):
            return None
        try:
            why = self._refused_input(job, error)
        except Exception:
            log.exception("telling whether the device refused a tile's input failed: counted as the device's")
            return None
        if why is None:
            return None
        refusal = InputRefused(f"the device refused the tile's input: {why}")
        refusal.__cause__ = error
        return refusal

    def _emit(self, name: str, **fields: Any) -> None:
        """An event; one that cannot be sent is logged, and changes nothing of what happens to a tile
        (a job counted pending must reach the queue, or a shutdown would wait for it for ever)."""
        try:
            self._event(name, **fields)
        except Exception:
            log.exception("the %s event could not be sent", name)

    def succeeded(self, job: Any = None) -> None:
        """An inference completed (``job``: the one that did, if recovery held it it holds it no more)."""
        with self._lock:
            self._streak = 0
            self._streak_since = None
            if self._held:
                self._held.discard(id(job))

    def replaced_at_load(self) -> None:
        """A model load found the device gone and opened on the fallback device: counted with the
        replacements in flight, so that ``status()`` shows the payload is not on its own device."""
        with self._lock:
            self.counts["replaced"] += 1

    def failing_for(self) -> float:
        """Seconds since the current streak of failures began, while recovery holds a failed tile (0
        when the device works, or has no failed tile to run): the Health component's probe, so that
        a device that stays lost stops the watchdog, and one left idle does not."""
        with self._lock:
            if self._streak_since is None or not self._held:
                return 0.0
            return time.monotonic() - self._streak_since

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def report(self) -> dict[str, Any]:
        with self._lock:
            state = "recovering" if self._streak or self._streak_since is not None else "ok"
            return {"state": state, "consecutive_failures": self._streak, "retrying": self._pending, **self.counts}

    def settle(self, timeout_s: float | None = None) -> bool:
        """Wait until no job is waiting here (at shutdown, before the adapter is closed)."""
        with self._settled:
            return self._settled.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self) -> None:
        """Stop the recovery thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _delay(self, streak: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2.0 ** min(max(0, streak - 1), MAX_DOUBLINGS))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            job, error, failed_at = item
            try:
                self._handle(job, error, failed_at)
            except Exception as exc:  # a bug here must not end recovery: this tile is rejected, the rest go on
                log.exception("device recovery failed on a job")
                self._emit("device_recovery_error", detail=f"{type(exc).__name__}: {exc}")
                try:
                    self._abandon(job, exc)
                except Exception:
                    log.exception("giving up a job failed")
            finally:
                with self._settled:
                    self._pending -= 1
                    self._settled.notify_all()

    def _abandon(self, job: Any, error: BaseException) -> None:
        """``job`` is given up (rejected through ``give_up``): counted, and held here no more."""
        with self._lock:
            self.counts["given_up"] += 1
            self._held.discard(id(job))
        self._give_up(job, error)

    def _handle(self, job: Any, error: BaseException, failed_at: float) -> None:
        attempts = getattr(job, "attempts", 1)
        if isinstance(error, InputRefused):  # the job's own input: no back-off to wait, nothing to retry
            self._abandon(job, error)
            return
        if attempts >= self.max_attempts:
            self._abandon(job, error)
            return
        with self._lock:
            streak = self._streak
        # The back-off runs from the job's failure, not from its turn here: tiles that failed together
        # wait one back-off together, where each waited its own after the one before (the last of N
        # after N back-offs; tests/runtime/test_recovery_review24.py).
        time.sleep(max(0.0, failed_at + self._delay(streak) - time.monotonic()))
        # Decided after the back-off, not before it: an inference that succeeded meanwhile ended the
        # streak (the device works), and a reopen decided before the sleep replaced a working device
        # (tests/runtime/test_recovery_review24.py).
        with self._lock:
            reopen = self._streak >= self.reopen_after
        if reopen:
            self._reopen_device()
        job.attempts = attempts + 1
        try:
            self._resubmit(job)
        except CannotRun as exc:  # not a retry: nothing serving can run it
            # Nor a run: the tile reports the runs it had ("after N attempts"), not the one refused.
            job.attempts = attempts
            self._abandon(job, exc)
            return
        except Exception as exc:
            refusal = self._refusal(job, exc)
            if refusal is not None:  # refused for the tile's own input: the tile's fault, given up now
                job.attempts = attempts  # refused on submission, as CannotRun: the re-run never ran
                self._abandon(job, refusal)
                return
            # the device refused the request outright: a failure like any other
            self._count_retry()
            self.failed(job, exc)
            return
        self._count_retry()

    def _count_retry(self) -> None:
        with self._lock:
            self.counts["retries"] += 1

    def _reopen_device(self) -> None:
        try:
            device, replaced = self._reopen()
        except Exception as exc:  # nothing could be opened: the tiles keep retrying, then are rejected
            self._emit("device_reopen_failed", detail=f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            self.counts["replaced" if replaced else "reopened"] += 1
            # A fresh device starts a fresh count towards the next reopen (failures still coming
            # from the old one are stale); the streak's clock runs on until an inference succeeds.
            self._streak = 0
        self._emit("device_replaced" if replaced else "device_reopened", device=device)
