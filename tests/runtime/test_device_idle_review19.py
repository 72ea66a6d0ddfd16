"""The Health probe of the device stage after recovery gave a tile up (runtime/recovery.py).

Until 2026-12-05 the probe's clock ran from the first failure to the next successful inference,
whatever came between: a tile rejected after ``max_attempts`` failures, then an idle payload, left
the device stage "hung" for ever and the watchdog starved although the device had nothing to do
(and had been reopened or replaced meanwhile). Now the stage is alive while recovery holds no tile;
a device that fails the next tile given to it is at once seen to be still lost.

As in tests/runtime/test_device_loss.py, the device is a real OpenVINO model on the CPU whose
adapter fails on cue (here: while ``LOST`` is set); the runtime, its sockets and recovery are real.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import runtime.server as server_module
from flightsim.streamer import Streamer
from runtime.device import OpenVINOAdapter
from runtime.recovery import DeviceRecovery
from runtime.server import Runtime
from tests.conftest import runtime_thread
from tests.runtime.test_device_loss_review import _one_result, _settings
from tests.runtime.test_server import Ground, _tile

#: Set: every request of every adapter opened fails, as on a stick unplugged (reopens fail too).
LOST = threading.Event()


class LostWhileSet(OpenVINOAdapter):
    """The model runs for real; while ``LOST`` is set each request fails on wait."""

    def _result(self, request: Any) -> np.ndarray:
        output = super()._result(request)
        if LOST.is_set():
            raise RuntimeError("[ NC_ERROR ] injected: device lost")
        return output


def _wait_device(runtime: Runtime, hung: bool, timeout_s: float) -> dict[str, Any]:
    """The runtime's status once its device stage is (or is not) hung, within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    status = runtime.status()
    while time.monotonic() < deadline and status["health"]["stages"]["device"]["hung"] is not hung:
        time.sleep(0.05)
        status = runtime.status()
    return status


@contextlib.contextmanager
def lost_device(settings: Any, bundle: Path, window: int = 2) -> Iterator[tuple[Runtime, Ground, Streamer]]:
    """A runtime served by :class:`LostWhileSet` adapters (``open_device`` patched by the caller),
    lost from the start (:data:`LOST` set, and cleared however the test ends), with a ground and a
    streamer of ``window`` tiles connected to it."""
    LOST.set()
    try:
        with runtime_thread(settings, bundle) as runtime:
            ground = Ground(runtime.endpoints)
            streamer = Streamer(runtime.endpoints["tiles"], window=window)
            try:
                yield runtime, ground, streamer
            finally:
                streamer.close()
    finally:
        LOST.clear()


def test_the_device_stage_answers_again_once_recovery_holds_no_tile(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "open_device",
                        lambda bundle, device, on_complete, **options: LostWhileSet(bundle, device, on_complete,
                                                                                   **options))
    # A failed tile is held here 0.6 s before its re-run: long enough for Health (every 0.1 s) to see it.
    settings = _settings(max_attempts=2, reopen_after=1, backoff_s=0.6, max_backoff_s=0.6)
    settings = replace(settings, health={**settings.health, "period_s": 0.1, "hang_timeout_s": 0.5})
    with lost_device(settings, brightness_bundle) as (runtime, ground, streamer):
        streamer.stream([_tile(0)])
        rejected = _one_result(ground)
        assert (rejected["status"], rejected["reason"]) == ("rejected", "inference_failed")
        # Idle, the device stage has nothing in flight: it answers, and the watchdog is fed.
        time.sleep(1.0)  # twice the hang timeout
        status = _wait_device(runtime, hung=False, timeout_s=0.5)
        assert status["health"]["stages"]["device"]["hung"] is False, status["health"]
        assert status["device_recovery"]["given_up"] == 1 and status["device_recovery"]["retrying"] == 0
        fed = status["health"]["watchdog_fed_at"]
        assert fed is not None and time.time() - fed < 0.5, f"the watchdog starved: {status['health']}"
        # Still lost: the next tile fails, and the stage is hung at once (no success since).
        streamer.stream([_tile(1)])
        status = _wait_device(runtime, hung=True, timeout_s=5)
        assert status["health"]["stages"]["device"]["hung"] is True, status["health"]
        assert _one_result(ground)["reason"] == "inference_failed"
        # The device is back: the next tile is served, and the stage answers.
        LOST.clear()
        streamer.stream([_tile(2)])
        served = _one_result(ground)
        assert served["status"] == "ok", served
        status = _wait_device(runtime, hung=False, timeout_s=5)
        assert status["health"]["stages"]["device"]["hung"] is False, status["health"]
        assert status["device_recovery"]["state"] == "ok"


def test_a_replaced_device_left_idle_answers_and_a_failure_after_shows_the_old_streak() -> None:
    """Recovery alone: a tile given up after the device was replaced leaves nothing held (the probe
    answers 0); the next failure reads the clock of the streak begun before, not a fresh one."""
    recovery = DeviceRecovery({"max_attempts": 2, "backoff_s": 0.0, "max_backoff_s": 0.0, "reopen_after": 1},
                              resubmit=lambda job: None, reopen=lambda: ("myriadx-emu", True),
                              give_up=lambda job, exc: None, event=lambda *args, **fields: None)
    try:
        job = SimpleNamespace(attempts=1)
        recovery.failed(job, RuntimeError("[ NC_ERROR ] injected"))
        assert recovery.settle(5) and recovery.report()["replaced"] == 1
        assert recovery.failing_for() > 0.0  # re-run on the new device, not yet completed
        recovery.failed(job, RuntimeError("[ NC_ERROR ] injected"))  # attempt 2: given up
        assert recovery.settle(5) and recovery.report()["given_up"] == 1
        time.sleep(0.2)
        assert recovery.failing_for() == 0.0, "an idle device was reported as failing"
        recovery.failed(SimpleNamespace(attempts=1), RuntimeError("[ NC_ERROR ] injected"))
        assert recovery.failing_for() >= 0.2
    finally:
        recovery.close()
