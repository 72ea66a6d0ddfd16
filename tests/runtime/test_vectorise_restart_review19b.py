"""The vectorise pool's ``failed`` callback and Health restarts: a stuck worker that Health restarted
(its item handed to a fresh worker) and whose ``work`` then raises must not have ``failed`` make a
result for that item. The serving runtime's ``failed`` counts an internal error and raises the
``internal_error`` event, so both were said of a tile the fresh worker answered ok, and the result they
were made for was thrown away (the pool delivers nothing from a restarted worker)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from runtime.vectorise_pool import VectorisePool


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_restarted_workers_late_exception_is_not_answered_by_failed() -> None:
    release = threading.Event()
    calls: list[str] = []

    def work(item: str) -> str:
        calls.append(item)
        if len(calls) == 1:  # the first worker hangs on it, and raises once released
            release.wait(10)
            raise RuntimeError("a bug met after the hang")
        return item.upper()

    delivered: list[tuple[str, str]] = []
    failed: list[str] = []

    def on_failed(item: str, exc: Exception) -> str:
        failed.append(item)  # the runtime counts internal_errors and raises an event here
        return "failed"

    pool = VectorisePool(1, work, lambda item, result: delivered.append((item, result)),
                         give_up=lambda item: "gave-up", failed=on_failed)
    pool.start()
    try:
        pool.put("a")
        assert _until(lambda: pool.probes()[0].age() > 0.05)
        pool.probes()[0].restart()  # as Health restarts a stuck stage
        assert _until(lambda: delivered == [("a", "A")]), delivered
        release.set()  # the stuck worker now raises
        time.sleep(0.3)
        assert failed == [], "failed made a result for an item a fresh worker had answered"
        assert delivered == [("a", "A")]
    finally:
        release.set()
        pool.stop(stuck_s=2.0)


def test_a_live_workers_exception_is_still_answered_by_failed() -> None:
    def work(item: str) -> str:
        raise RuntimeError("a bug")

    delivered: list[tuple[str, str]] = []
    pool = VectorisePool(1, work, lambda item, result: delivered.append((item, result)),
                         failed=lambda item, exc: f"failed: {exc}")
    pool.start()
    try:
        pool.put("a")
        assert _until(lambda: len(delivered) == 1, 5.0)
        assert delivered == [("a", "failed: a bug")]
    finally:
        pool.stop(stuck_s=2.0)
