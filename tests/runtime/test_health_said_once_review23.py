"""Health says a check that raises once per run of failing checks, not every period: a probe broken for
good filled the telemetry with one internal_error every ``period_s``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.health import Health, StageProbe


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_check_that_keeps_raising_is_said_once_per_run_of_failures() -> None:
    broken = threading.Event()
    broken.set()
    calls = {"failed": 0, "passed": 0}

    def age() -> float:
        if broken.is_set():
            calls["failed"] += 1
            raise RuntimeError("a probe's bug")
        calls["passed"] += 1
        return 0.0

    said: list[tuple[str, dict[str, Any]]] = []
    health = Health([StageProbe("stage", age)], 0.02, 60.0, lambda name, **fields: said.append((name, fields)))
    health.start()
    try:
        assert _until(lambda: calls["failed"] >= 10)
        assert [name for name, _ in said] == ["internal_error"]
        broken.clear()
        assert _until(lambda: calls["passed"] >= 2)  # checks pass again: the run of failures is over
        failed = calls["failed"]
        broken.set()
        assert _until(lambda: calls["failed"] >= failed + 10)  # a new run: said again, once
        assert [name for name, _ in said] == ["internal_error", "internal_error"]
    finally:
        health.stop()
