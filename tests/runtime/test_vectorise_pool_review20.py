"""Review 20 of the vectorise workers: a worker that dies is seen by Health and restarted, and nothing it
held is lost; a ``deliver`` that raises ends neither the worker nor the item."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import rasterio

from runtime.health import Health, StageProbe
from runtime.vectorise_pool import DeliverFailed, VectorisePool


class WorkerKilled(BaseException):
    """Not an Exception: what the pool's per-item guard does not catch (as SystemExit would not be)."""


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def _env_fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first worker's GDAL environment cannot be set up: that worker dies before it takes an item,
    idle (its heartbeat never begins, so its age stays 0)."""
    real_env = rasterio.Env
    failed = threading.Event()

    def env(*args: Any, **kwargs: Any) -> Any:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("GDAL environment could not be set up")
        return real_env(*args, **kwargs)

    monkeypatch.setattr(rasterio, "Env", env)


def _stop_with_two_queued(pool: VectorisePool[Any, Any]) -> bool:
    """Start ``pool``, wait for its one worker to be dead, queue "a" and "b", and stop it; whether
    stop() returned within 15 s."""
    pool.start()
    assert _until(lambda: pool.dead(0), 5.0)
    pool.put("a")
    pool.put("b")
    stopper = threading.Thread(target=pool.stop, kwargs={"stuck_s": 2.0})
    stopper.start()
    stopper.join(15)
    return not stopper.is_alive()


def _health(pool: VectorisePool[Any, Any], said: list[tuple[str, dict[str, Any]]]) -> Health:
    """Health checking every 50 ms, with a hang timeout no test here waits for: what it does within
    seconds it does because a worker is dead, not because it looks stuck."""
    return Health(pool.probes(), 0.05, 60.0, lambda name, **fields: said.append((name, fields)))


def test_a_worker_that_died_idle_is_restarted_by_health_and_its_tiles_are_served(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker died before its first item: its age stayed 0, Health took it for idle for ever, the
    watchdog stayed fed, and with one worker no item was ever answered."""
    _env_fails_once(monkeypatch)
    delivered: list[tuple[str, str]] = []
    said: list[tuple[str, dict[str, Any]]] = []
    pool = VectorisePool(1, str.upper, lambda item, result: delivered.append((item, result)))
    pool.start()
    health = _health(pool, said)
    health.start()
    try:
        for x in ("a", "b", "c"):
            pool.put(x)
        assert _until(lambda: len(delivered) == 3, 5.0), f"a dead worker's items were never served: {delivered}"
        assert delivered == [("a", "A"), ("b", "B"), ("c", "C")]
        assert health.report()["stages"]["vectorise-0"]["restarts"] == 1
        names = [name for name, _ in said]
        assert names[:2] == ["stage_dead", "stage_restarted"], said
        assert said[0][1] == {"stage": "vectorise-0"}
        assert not pool.dead(0)
    finally:
        health.stop()
        pool.stop(stuck_s=2.0)


def test_a_worker_killed_on_an_item_hands_it_and_the_rest_of_its_batch_on_at_once() -> None:
    """A BaseException from ``work`` ends the thread on its item, with two more of its batch held. It
    was seen only once the item had looked stuck for the whole hang timeout (here 60 s)."""
    killed = threading.Event()

    def work(item: str) -> str:
        if item == "a" and not killed.is_set():
            killed.set()
            raise WorkerKilled()
        return item.upper()

    delivered: list[tuple[str, str]] = []
    said: list[tuple[str, dict[str, Any]]] = []
    pool = VectorisePool(1, work, lambda item, result: delivered.append((item, result)),
                         give_up=lambda item: "gave-up", batch=3, batch_wait_s=0.5)
    for x in ("a", "b", "c"):  # one batch
        pool.put(x)
    pool.start()
    health = _health(pool, said)
    health.start()
    try:
        assert _until(lambda: len(delivered) == 3, 5.0), f"items held by a dead worker were lost: {delivered}"
        # "a" is handed on once, as a stuck worker's item is, and the fresh worker serves it
        assert sorted(delivered) == [("a", "A"), ("b", "B"), ("c", "C")]
        assert health.report()["stages"]["vectorise-0"]["restarts"] == 1
        assert [name for name, _ in said] == ["stage_dead", "stage_restarted"]
    finally:
        health.stop()
        pool.stop(stuck_s=2.0)


def test_stop_restarts_a_dead_worker_so_every_item_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() waited only for live workers: with the only worker dead it returned at once, and the
    queued items were never answered (their tiles lost at shutdown)."""
    _env_fails_once(monkeypatch)
    delivered: list[tuple[str, str]] = []
    pool = VectorisePool(1, str.upper, lambda item, result: delivered.append((item, result)))
    assert _stop_with_two_queued(pool), "stop() did not return"
    assert delivered == [("a", "A"), ("b", "B")]
    assert not pool.dead(0), "a worker that ended on its stop signal is not dead"


def test_a_deliver_that_raises_answers_its_item_with_failed_and_the_worker_goes_on() -> None:
    """The exception from ``deliver`` ended the thread: the item was never answered, nor were the ones
    after it. Now ``failed`` is told (a DeliverFailed, caused by deliver's error) and its result is
    delivered, once; the same thread serves the next items."""
    calls: list[tuple[str, str]] = []
    threads: set[int | None] = set()

    def deliver(item: str, result: str) -> None:
        calls.append((item, result))
        threads.add(threading.current_thread().ident)
        if (item, result) == ("a", "A"):
            raise RuntimeError("a bug in delivery")

    told: list[Exception] = []

    def failed(item: str, exc: Exception) -> str:
        told.append(exc)
        return f"failed: {exc.__cause__!r}"

    pool = VectorisePool(1, str.upper, deliver, give_up=lambda item: "gave-up", failed=failed)
    pool.start()
    try:
        for x in ("a", "b", "c"):
            pool.put(x)
        assert _until(lambda: len(calls) == 4, 5.0), f"the worker died with a raising deliver: {calls}"
        assert calls == [("a", "A"), ("a", "failed: RuntimeError('a bug in delivery')"), ("b", "B"), ("c", "C")]
        assert len(told) == 1 and isinstance(told[0], DeliverFailed)
        assert isinstance(told[0].__cause__, RuntimeError)
        assert len(threads) == 1 and not pool.dead(0) and pool.probes()[0].age() == 0.0
    finally:
        pool.stop(stuck_s=2.0)
    assert len(calls) == 4, "an item was answered twice"


def test_a_deliver_that_raises_again_is_not_tried_a_third_time() -> None:
    calls: list[str] = []

    def deliver(item: str, result: str) -> None:
        calls.append(item)
        if item == "a":
            raise RuntimeError("a bug in delivery, whatever the result")

    pool = VectorisePool(1, str.upper, deliver, failed=lambda item, exc: "failed")
    pool.start()
    try:
        pool.put("a")
        pool.put("b")
        assert _until(lambda: "b" in calls, 5.0), f"the worker died: {calls}"
        time.sleep(0.2)
        assert calls == ["a", "a", "b"]
        assert not pool.dead(0)
    finally:
        pool.stop(stuck_s=2.0)


def test_health_reports_a_dead_stage_it_cannot_restart_once_and_starves_the_watchdog() -> None:
    said: list[str] = []
    probe = StageProbe("worker", lambda: 0.0, None, dead=lambda: True)
    health = Health([probe], 1.0, 60.0, lambda name, **fields: said.append(name))
    assert health.check() is False and health.check() is False
    assert said == ["stage_dead"] and health.fed_at is None
    assert health.report()["stages"]["worker"]["hung"] is True


def test_stop_gives_up_on_a_worker_that_dies_at_every_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose GDAL environment never opens died again after each restart at shutdown, and
    stop() restarted it for ever; after SHUTDOWN_RESTARTS it gives its items up instead."""
    from runtime.vectorise_pool import SHUTDOWN_RESTARTS

    starts: list[int] = []

    def env(*args: Any, **kwargs: Any) -> Any:
        starts.append(1)
        raise RuntimeError("GDAL environment could not be set up")

    monkeypatch.setattr(rasterio, "Env", env)
    delivered: list[tuple[str, str]] = []
    pool = VectorisePool(1, str.upper, lambda item, result: delivered.append((item, result)),
                         give_up=lambda item: f"gave up {item}")
    assert _stop_with_two_queued(pool), "stop() restarted a worker that dies at every start for ever"
    assert sorted(delivered) == [("a", "gave up a"), ("b", "gave up b")]
    assert len(starts) == 1 + SHUTDOWN_RESTARTS
