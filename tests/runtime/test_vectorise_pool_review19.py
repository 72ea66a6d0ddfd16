"""Review 19 of the vectorise workers: a ``work`` that raises, and settings the pool must refuse."""

from __future__ import annotations

import threading
import time

import pytest

from runtime.vectorise_pool import VectorisePool


def _until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def _work(item: str) -> str:
    if item == "bad":
        raise RuntimeError("a bug met on this item")
    return item.upper()


def test_a_work_that_raises_answers_its_item_and_the_worker_goes_on_with_its_batch() -> None:
    """The raising item is answered at once (by ``give_up`` where no ``failed`` is given), the rest of
    its batch and later items are delivered by the same (live) worker. The exception ended the thread:
    the batch-mates waited for Health to take the dead worker for a stuck one, and with no Health they
    were never answered."""
    delivered: list[tuple[str, str]] = []
    pool = VectorisePool(1, _work, lambda item, result: delivered.append((item, result)),
                         give_up=lambda item: "gave-up", batch=3, batch_wait_s=0.5)
    for x in ("a", "bad", "b"):  # one batch
        pool.put(x)
    pool.start()
    try:
        assert _until(lambda: len(delivered) == 3, 5.0), f"items lost behind a raising one: {delivered}"
        pool.put("c")
        assert _until(lambda: len(delivered) == 4, 5.0), "the worker died with the raising item"
        assert delivered == [("a", "A"), ("bad", "gave-up"), ("b", "B"), ("c", "C")]
        assert pool.probes()[0].age() == 0.0, "the worker still looks busy on the raising item"
    finally:
        pool.stop(stuck_s=2.0)


def test_failed_makes_the_result_of_a_raising_item_and_is_told_the_error() -> None:
    delivered: list[tuple[str, str]] = []
    pool = VectorisePool(1, _work, lambda item, result: delivered.append((item, result)),
                         give_up=lambda item: "gave-up", failed=lambda item, exc: f"failed: {exc}")
    pool.start()
    try:
        pool.put("bad")
        assert _until(lambda: len(delivered) == 1, 5.0)
        assert delivered == [("bad", "failed: a bug met on this item")]
    finally:
        pool.stop(stuck_s=2.0)


def test_stop_answers_every_item_when_a_work_raised() -> None:
    """At shutdown a worker that died on a raising item is not alive, so stop() did not wait for
    it, and neither that item nor the rest of its batch was ever answered (their tiles lost)."""
    delivered: list[tuple[str, str]] = []
    pool = VectorisePool(1, _work, lambda item, result: delivered.append((item, result)),
                         give_up=lambda item: "gave-up", batch=4, batch_wait_s=0.5)
    for x in ("bad", "a", "b"):
        pool.put(x)
    pool.start()
    stopper = threading.Thread(target=pool.stop, kwargs={"stuck_s": 1.0})
    stopper.start()
    stopper.join(15)
    assert not stopper.is_alive()
    # no ``failed``: ``give_up`` answers the raising item
    assert sorted(delivered) == [("a", "A"), ("b", "B"), ("bad", "gave-up")]


@pytest.mark.parametrize("workers, batch, wait", [(0, 1, 0.0), (-2, 1, 0.0), (1, 4, float("nan"))])
def test_no_workers_or_a_nan_wait_is_refused(workers: int, batch: int, wait: float) -> None:
    """``workers = 0`` became one worker silently, and a NaN wait passed ``< 0`` (it then acted as 0)."""
    with pytest.raises(ValueError, match="workers and batch must be >= 1"):
        VectorisePool(workers, lambda x: x, lambda *_: None, batch=batch, batch_wait_s=wait)


def test_a_restart_is_counted_by_the_time_the_result_it_gives_up_on_is_delivered() -> None:
    """Health counted a restart only after ``restart()`` returned, but a restart delivers the result
    of a tile stuck twice (``give_up``): a status read as soon as that result reached the ground said
    one restart fewer (tests/runtime/test_health.py's two-workers test failed so, now and then)."""
    from runtime.health import Health

    release = threading.Event()
    seen_restarts: list[int] = []

    def work(x: str) -> str:
        release.wait(30)  # every worker that takes it hangs
        return x

    health: Health | None = None

    def deliver(item: str, result: str) -> None:
        assert health is not None
        seen_restarts.append(health.report()["stages"]["vectorise-0"]["restarts"])

    pool = VectorisePool(1, work, deliver, give_up=lambda x: "gave-up")
    pool.start()
    health = Health(pool.probes(), 0.05, 0.3, lambda name, **f: None)
    health.start()
    try:
        pool.put("A")
        assert _until(lambda: bool(seen_restarts), 10.0), "the tile stuck twice was never given up on"
        assert seen_restarts == [2], "the result of the second restart came before the restart was counted"
    finally:
        release.set()
        health.stop()
        pool.stop(stuck_s=2.0)
