"""Review 21: the last failure paths of post-processing. Every accepted tile is counted once, ok or rejected
with a reason, and the payload serves on, even when the pool's answer to a bug raises too (``lost``), when a
restart raises in Health's thread, or when ``Runtime._vectorised`` raises after its latency sample."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import config, protocol
from runtime.health import Health
from runtime.server import Runtime, Settings
from runtime.telemetry import Telemetry
from runtime.vectorise_pool import DeliverFailed, VectorisePool
from tests.conftest import drained_events, event_subscriber, runtime_thread
from tests.runtime.test_server import Ground


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def _raises_once(real: Callable[..., Any], when: Callable[..., bool], error: str) -> Callable[..., Any]:
    """``real``, raising RuntimeError(``error``) instead the first time ``when(*args)`` holds (a fault
    injected into a real callback)."""
    raised = threading.Event()

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not raised.is_set() and when(*args):
            raised.set()
            raise RuntimeError(error)
        return real(*args, **kwargs)

    return wrapped


# -- the pool: lost, and a give_up that raises in a restart ----------------------------------------


def test_an_item_whose_failed_raises_too_goes_to_lost_once_and_the_worker_goes_on() -> None:
    """``work`` raises on "b", then ``failed`` raises on it: the worker used to die with "b" (and, once
    ``deliver`` raised and ``failed`` too, the item was only logged). Now ``lost`` frees it, once."""
    delivered: list[tuple[str, str]] = []
    lost: list[tuple[str, str]] = []

    def work(item: str) -> str:
        if item == "b":
            raise ValueError("a bug in work")
        return item.upper()

    def deliver(item: str, result: str) -> None:
        if item == "d" and not any(i == "d" for i, _ in delivered):
            delivered.append(("d", "raised"))
            raise RuntimeError("a bug in deliver")
        delivered.append((item, result))

    def failed(item: str, error: Exception) -> str:
        raise RuntimeError(f"a bug in failed on {item}")

    pool = VectorisePool(1, work, deliver, failed=failed,
                         lost=lambda item, exc: lost.append((item, str(exc))))
    pool.start()
    try:
        for x in "abcde":
            pool.put(x)
        assert _until(lambda: len(delivered) == 4 and len(lost) == 2, 5.0), (delivered, lost)
    finally:
        pool.stop(stuck_s=2.0)
    assert delivered == [("a", "A"), ("c", "C"), ("d", "raised"), ("e", "E")]
    assert lost == [("b", "a bug in failed on b"), ("d", "a bug in failed on d")]
    assert not pool.dead(0)


def test_a_give_up_that_raises_in_healths_restart_is_answered_and_health_watches_on() -> None:
    """A tile that gets a second worker stuck is given up on in Health's restart; a ``give_up`` that raised
    there reached Health's thread and ended it: the tile was never answered and nothing watched again."""
    release = threading.Event()
    stuck_on_x = [0]
    answers: list[tuple[str, str]] = []
    said: list[tuple[str, dict[str, Any]]] = []

    def work(item: str) -> str:
        if item == "x" and stuck_on_x[0] < 2:
            stuck_on_x[0] += 1
            release.wait(10.0)  # stuck until the test ends
        return item.upper()

    def give_up(item: str) -> str:
        raise RuntimeError("a bug in give_up")

    def failed(item: str, error: Exception) -> str:
        return f"failed: {error}"

    pool = VectorisePool(1, work, lambda item, result: answers.append((item, result)), give_up=give_up,
                         failed=failed)
    pool.start()
    health = Health(pool.probes(), 0.05, 0.3, lambda name, **fields: said.append((name, fields)))
    health.start()
    try:
        pool.put("x")
        pool.put("y")
        assert _until(lambda: len(answers) == 2, 5.0), answers
        assert health._thread is not None and health._thread.is_alive(), "Health's thread died"
        fed = health.fed_at
        assert _until(lambda: health.fed_at is not None and health.fed_at != fed, 2.0), "watchdog not fed"
    finally:
        release.set()
        health.stop()
        pool.stop(stuck_s=2.0)
    assert sorted(answers) == [("x", "failed: a bug in give_up"), ("y", "Y")]  # x is handed on behind y
    assert health.report()["stages"]["vectorise-0"]["restarts"] == 2


def test_a_restart_that_raises_is_a_failed_restart_and_health_restarts_again(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead worker whose first restart raises: Health's thread used to end there, with the worker dead
    and its items never served. Now the failure is said, the stage stays hung (no watchdog fed), and
    the next check restarts it."""
    real_env = rasterio.Env
    env_failed = threading.Event()

    def env(*args: Any, **kwargs: Any) -> Any:
        if not env_failed.is_set():  # the first worker dies idle, as in test_vectorise_pool_review20.py
            env_failed.set()
            raise RuntimeError("GDAL environment could not be set up")
        return real_env(*args, **kwargs)

    monkeypatch.setattr(rasterio, "Env", env)
    delivered: list[tuple[str, str]] = []
    said: list[tuple[str, dict[str, Any]]] = []
    pool = VectorisePool(1, str.upper, lambda item, result: delivered.append((item, result)))
    pool.start()
    probes = pool.probes()
    probes[0].restart = _raises_once(probes[0].restart, lambda: True, "a bug in restart")  # type: ignore[arg-type]
    health = Health(probes, 0.05, 60.0, lambda name, **fields: said.append((name, fields)))
    health.start()
    try:
        for x in "abc":
            pool.put(x)
        assert _until(lambda: len(delivered) == 3, 5.0), f"Health stopped watching: {said}"
        assert _until(lambda: health.fed_at is not None, 2.0), "the watchdog was never fed once restarted"
    finally:
        health.stop()
        pool.stop(stuck_s=2.0)
    assert delivered == [("a", "A"), ("b", "B"), ("c", "C")]
    names = [name for name, _ in said]
    assert names[:3] == ["stage_dead", "stage_restart_failed", "stage_restarted"], said
    assert said[1][1] == {"stage": "vectorise-0", "restarts": 1, "detail": "RuntimeError('a bug in restart')"}
    assert health.report()["stages"]["vectorise-0"]["restarts"] == 2


# -- the runtime ------------------------------------------------------------------------------------


@contextmanager
def _runtime(brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> Iterator[Runtime]:
    """A runtime with one vectorise worker taking one tile at a time, so which tile meets a fault is known."""
    cfg = config.defaults()
    cfg["vectorize"] = {**cfg["vectorize"], "workers": 1, "batch": 1}
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 5.0, "watchdog_file": ""}
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle) as runtime:
        yield runtime


def _stream_three(endpoints: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Stream tiles s/0, s/1 and s/2 and return their results, by tile id, each acknowledged."""
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    tiles = [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(3)]
    ground = Ground(endpoints)
    Streamer(endpoints["tiles"]).stream(tiles)
    return {r["tile_id"]: r for r in ground.results(3, timeout_s=4.0)}  # within one hang timeout


def _counted_once(runtime: Runtime) -> dict[str, Any]:
    """The counters once every tile has left the runtime (its inside count back to 0)."""
    assert _until(lambda: runtime.status()["counters"]["queue_depth"]["tiles_inside"] == 0, 5.0), \
        runtime.status()["counters"]
    counters = runtime.status()["counters"]
    assert counters["in_flight"] == 0, counters
    return counters


def test_a_tile_whose_rejection_cannot_be_made_is_still_rejected_once_and_leaves(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """``_vectorised`` raises on tile s/1, then so does ``_post_processing_failed``: the tile was only
    logged, stayed inside for ever (tiles_inside 1, in_flight 1) and was never answered."""
    monkeypatch.setattr(Runtime, "_vectorised", _raises_once(
        Runtime._vectorised, lambda self, item, result: item[1].header["tile_id"] == "s/1", "a bug in delivery"))
    monkeypatch.setattr(Runtime, "_post_processing_failed", _raises_once(
        Runtime._post_processing_failed, lambda self, item, exc: isinstance(exc, DeliverFailed), "a bug in failed"))
    with _runtime(brightness_bundle, ipc_endpoints) as runtime, event_subscriber(ipc_endpoints["telemetry"]) as events:
        got = _stream_three(runtime.endpoints)
        counters = _counted_once(runtime)
        rejected = drained_events(events, "tile_rejected")
    assert got["s/1"]["status"] == "rejected", got["s/1"]
    assert got["s/1"]["reason"] == protocol.Reason.INFERENCE_FAILED.value
    assert "internal error RuntimeError('a bug in failed')" in got["s/1"]["detail"]
    assert got["s/0"]["status"] == got["s/2"]["status"] == "ok"
    assert counters["tiles_ok"] == 2 and counters["tiles_rejected"] == 1, counters
    assert [e["tile_id"] for e in rejected] == ["s/1"], rejected


def test_a_tile_whose_latency_sample_raises_is_counted_once(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """The latency sample came after ``tiles_ok``: when it raised, the tile was counted ok, then rejected
    by the pool's answer (tiles_ok 3 and tiles_rejected 1 for three tiles, in_flight -1)."""
    monkeypatch.setattr(Telemetry, "latency", _raises_once(Telemetry.latency, lambda self, s: True, "a bug in latency"))
    with _runtime(brightness_bundle, ipc_endpoints) as runtime:
        got = _stream_three(runtime.endpoints)
        counters = _counted_once(runtime)
    [rejected] = [r for r in got.values() if r["status"] == "rejected"]
    assert "delivering its result: internal error RuntimeError('a bug in latency')" in rejected["detail"]
    assert counters["tiles_ok"] == 2 and counters["tiles_rejected"] == 1, counters
    assert counters["internal_errors"] == 1
