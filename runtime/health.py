"""Health of the pipeline stages and the watchdog, in the manner of NASA F´'s Health component.

Each stage keeps a :class:`Heartbeat`: what it is working on and since when. Every period the
Health thread asks each stage how long it has been stuck on one piece of work (the F´ ping: a stage
that is working normally answers within one item's time). Only when every stage answers in time is
the watchdog fed (a timestamp in telemetry, and a file touched for an external supervisor such as
systemd's WatchdogSec or a hardware watchdog driver). A stage that does not answer is reported
(``stage_hung``, WARNING_HI) and, if it can be restarted safely, restarted (``stage_restarted``): its
work item is handed to a fresh worker, and whatever the stuck one produces later is discarded.

A stage whose thread has died (a vectorise worker, whose probe says so) is as bad as a hung one and is
treated as one, without waiting for the hang timeout: reported (``stage_dead``, WARNING_HI), restarted
and counted. Its age alone could not say so: a thread that dies idle looks idle for ever.

A restart that raises (a bug in it) is a failed restart: logged and said (``stage_restart_failed``,
WARNING_HI, once while it keeps failing), the stage stays hung (so the watchdog is not fed) and is
restarted again at the next check. It used to end Health's thread: nothing watched the stages again,
and the watchdog went unfed with no event saying why (tests/runtime/test_post_processing_review21.py).
A check that raises anywhere else is logged and said as well (``internal_error``, once while checks keep
failing), and Health goes on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("runtime")


@dataclass
class Heartbeat:
    """One worker's liveness: the item it holds and when it took it (None when idle)."""

    name: str
    busy_since: float | None = None
    item: Any = None

    def begin(self, item: Any) -> None:
        self.item, self.busy_since = item, time.monotonic()

    def end(self) -> None:
        self.item, self.busy_since = None, None

    def age(self) -> float:
        since = self.busy_since
        return 0.0 if since is None else time.monotonic() - since


@dataclass
class StageProbe:
    """How Health asks a stage: seconds stuck on one item, how to restart it (None: cannot), and
    whether its thread has died (None: the stage cannot tell)."""

    name: str
    age: Callable[[], float]
    restart: Callable[[], None] | None = None
    restarts: int = 0
    hung: bool = False
    dead: Callable[[], bool] | None = None
    restart_failed: bool = False  # the last restart raised (said once per streak of failures)


@dataclass
class Health:
    """Pings every stage each period and feeds the watchdog only when all of them answer."""

    probes: list[StageProbe]
    period_s: float
    hang_timeout_s: float
    event: Callable[..., None]
    watchdog_file: str = ""
    fed_at: float | None = None
    _unwritable: bool = False  # the last feed of watchdog_file failed (reported once per streak)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def check(self) -> bool:
        """One round: every stage answers, or is reported (and restarted where that is safe)."""
        all_ok = True
        for probe in self.probes:
            if probe.dead is not None and probe.dead():
                all_ok = False
                if not probe.hung:  # reported once while it stays dead (one that cannot be restarted)
                    self.event("stage_dead", stage=probe.name)
                self._restart(probe)
                continue
            age = probe.age()
            if age < self.hang_timeout_s:
                probe.hung = False
                continue
            all_ok = False
            if not probe.hung:  # report a hang once, not every period
                self.event("stage_hung", stage=probe.name, stuck_s=round(age, 3))
            self._restart(probe)
        if all_ok:
            self.fed_at = time.time()
            if self.watchdog_file:
                try:
                    Path(self.watchdog_file).touch()
                    os.utime(self.watchdog_file)
                    self._unwritable = False
                except OSError as exc:  # its folder gone, a full disk: said once, and Health goes on
                    if not self._unwritable:
                        self.event("watchdog_unwritable", path=self.watchdog_file, error=str(exc))
                    self._unwritable = True
        return all_ok

    def _restart(self, probe: StageProbe) -> None:
        """Restart a hung or dead stage where that is safe (counted, with ``stage_restarted``); a stage
        that cannot be restarted stays marked hung, so it is reported once."""
        probe.hung = True
        if probe.restart is not None:
            # Counted first: a restart may deliver the stuck item's result (a tile given up on), and
            # a status read as soon as that result arrived still said one restart fewer.
            probe.restarts += 1
            try:
                probe.restart()
            except Exception as exc:  # a bug in the restart: this thread must go on watching
                log.exception("restarting stage %s raised", probe.name)
                if not probe.restart_failed:
                    self.event("stage_restart_failed", stage=probe.name, restarts=probe.restarts, detail=repr(exc))
                probe.restart_failed = True
                return  # still hung: the watchdog is not fed, and the next check restarts it again
            probe.hung = probe.restart_failed = False
            self.event("stage_restarted", stage=probe.name, restarts=probe.restarts)

    def report(self) -> dict[str, Any]:
        return {
            "watchdog_fed_at": self.fed_at,
            # False while the watchdog file cannot be touched: fed_at then advances, the file does not
            "watchdog_file_ok": not self._unwritable,
            "stages": {p.name: {"stuck_s": round(p.age(), 3), "hung": p.hung, "restarts": p.restarts}
                       for p in self.probes},
        }

    def _run(self) -> None:
        failing = False  # said once per run of failing checks, as a failed restart is: not every period
        while not self._stop.wait(self.period_s):
            try:
                self.check()
                failing = False
            except Exception as exc:  # a probe's bug: the round is not fed, and Health watches on
                log.exception("a health check raised")
                if failing:
                    continue
                failing = True
                try:
                    self.event("internal_error", handler="Health.check", detail=repr(exc))
                except Exception:
                    log.exception("saying a health check raised failed too")
