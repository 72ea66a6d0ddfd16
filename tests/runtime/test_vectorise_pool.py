"""The vectorise workers on their own: batches, and a restart that loses no tile of a batch."""

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


def test_a_worker_waits_for_its_batch_to_fill_but_no_longer_than_the_wait() -> None:
    delivered: list[tuple[str, float]] = []
    pool = VectorisePool(1, lambda x: x, lambda item, _: delivered.append((item, time.monotonic())),
                         batch=4, batch_wait_s=0.5)
    pool.start()
    try:
        start = time.monotonic()
        pool.put("alone")
        assert _until(lambda: len(delivered) == 1)
        assert delivered[0][1] - start >= 0.45, "a lone tile was not held for its batch"
        start = time.monotonic()
        for x in "abcd":  # a full batch is not held for the wait
            pool.put(x)
        assert _until(lambda: len(delivered) == 5)
        assert [d for d, _ in delivered[1:]] == list("abcd")
    finally:
        pool.stop()


def test_one_at_a_time_is_not_held() -> None:
    delivered: list[float] = []
    pool = VectorisePool(1, lambda x: x, lambda *_: delivered.append(time.monotonic()), batch=1, batch_wait_s=5.0)
    pool.start()
    try:
        start = time.monotonic()
        pool.put("alone")
        assert _until(lambda: len(delivered) == 1, 4.0), "batch = 1 held a tile for the wait"
        assert delivered[0] - start < 4.0
    finally:
        pool.stop()


def test_a_restarted_worker_hands_on_the_rest_of_its_batch() -> None:
    """Stuck on the first tile of a batch of four: after the restart every tile is delivered once,
    the stuck one by the fresh worker, and the stuck worker's late result is discarded."""
    release, stuck_once = threading.Event(), []
    delivered: list[tuple[str, str]] = []

    def work(x: str) -> str:
        if x == "stuck" and not stuck_once:
            stuck_once.append(x)
            release.wait(30)
            return "late"
        return x

    pool = VectorisePool(1, work, lambda item, result: delivered.append((item, result)), batch=4, batch_wait_s=5.0)
    for x in ("stuck", "a", "b", "c"):
        pool.put(x)
    pool.start()
    try:
        assert _until(lambda: pool.probes()[0].age() > 0 and stuck_once), "the worker never took its batch"
        assert pool.depth() == 3  # the rest of its batch, waiting behind the stuck tile
        pool.restart(0)
        assert _until(lambda: len(delivered) == 4)
        release.set()
        time.sleep(0.2)  # the stuck worker returns now; its result must not be delivered
        assert sorted(delivered) == [("a", "a"), ("b", "b"), ("c", "c"), ("stuck", "stuck")]
    finally:
        release.set()
        pool.stop()


@pytest.mark.parametrize("batch, wait", [(0, 0.1), (4, -1.0)])
def test_a_batch_below_one_or_a_negative_wait_is_refused(batch: int, wait: float) -> None:
    with pytest.raises(ValueError, match="batch must be >= 1"):
        VectorisePool(1, lambda x: x, lambda *_: None, batch=batch, batch_wait_s=wait)
