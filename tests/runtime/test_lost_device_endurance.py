"""A device lost for long, recovery's own errors, and a shutdown while a lost device is still closing.

Found by a review of 2026-12-04, each test failing on the code before it: the back-off overflowed
once a device had been lost for 1,025 consecutive failures (about an orbit at the defaults) and
killed the recovery thread, and with it every later tile; a shutdown soon after a reopen returned
before the replaced adapter's requests had failed back into recovery, so their accepted tiles got
nothing; and a tile that a newly uplinked model could not take was rejected without being counted
as given up. As in tests/runtime/test_device_loss.py, the failing device is a real OpenVINO model
on the CPU whose adapter fails on cue; the runtime, its sockets and its recovery are the real ones.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from flightsim.streamer import Streamer
from runtime.client import ControlClient
from runtime.device import OpenVINOAdapter
from runtime.recovery import MAX_DOUBLINGS, DeviceRecovery
from runtime.server import Runtime
from tests.conftest import make_brightness_bundle, runtime_thread
from tests.runtime.test_device_loss_review import FailsEveryRequest, _settings, first_device_as
from tests.runtime.test_server import Ground, _tile


def assert_stops_within(runtime: Runtime, thread: threading.Thread, seconds: float, why: str) -> None:
    """Ask ``runtime`` (served by ``thread``) to stop; it must have returned within ``seconds``."""
    started = time.monotonic()
    runtime.stop()
    thread.join(timeout=30)
    assert not thread.is_alive(), why
    assert time.monotonic() - started < seconds


def _recovery(resubmit: Any, reopen: Any, event: Any = None, **settings: Any) -> tuple[DeviceRecovery, list]:
    given_up: list = []
    recovery = DeviceRecovery({"max_attempts": 4, "backoff_s": 0.0, "max_backoff_s": 0.0, "reopen_after": 1,
                               **settings}, resubmit, reopen, lambda job, error: given_up.append((job, error)),
                               event or (lambda *args, **kwargs: None))
    return recovery, given_up


def _lost(job: Any) -> None:
    raise RuntimeError("[ NC_ERROR ] injected: device lost")


def _nothing_opens() -> tuple[str, bool]:
    raise RuntimeError("no device attached")


def test_a_device_lost_for_good_does_not_end_recovery() -> None:
    """2,000 consecutive failures (every re-run refused, every reopen failing): the back-off stays
    at its cap and the tile is given up at max_attempts; a tile failing afterwards is handled too."""
    recovery, given_up = _recovery(_lost, _nothing_opens, max_attempts=2000, max_backoff_s=0.0)
    try:
        assert recovery._delay(10**6) == recovery._delay(2 + MAX_DOUBLINGS) == 0.0
        first = SimpleNamespace(attempts=1)
        recovery.failed(first, RuntimeError("lost"))
        assert recovery.settle(60), recovery.report()
        later = SimpleNamespace(attempts=2000)
        recovery.failed(later, RuntimeError("lost"))
        assert recovery.settle(10), recovery.report()
        assert [job for job, _ in given_up] == [first, later]
        assert recovery.report()["consecutive_failures"] >= 2000 and recovery.counts["given_up"] == 2
    finally:
        recovery.close()


def test_the_capped_back_off_is_the_cap_at_any_streak() -> None:
    recovery, _ = _recovery(_lost, _nothing_opens, backoff_s=0.5, max_backoff_s=5.0)
    try:
        assert [recovery._delay(s) for s in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 5.0]
        assert recovery._delay(1025) == recovery._delay(10**9) == 5.0
    finally:
        recovery.close()


class Unwritable:
    """A job whose attempt count cannot be written: recovery fails on it (a stand-in for any bug)."""

    attempts = 1

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{name} is read-only")


def test_a_bug_met_in_recovery_rejects_that_tile_and_recovery_goes_on() -> None:
    """Whatever recovery itself fails on, that tile is given up with an event saying why, and the
    next tile is recovered."""
    events: list[str] = []
    runs: list[Any] = []
    recovery, given_up = _recovery(runs.append, lambda: ("CPU", False), lambda name, **fields: events.append(name))
    try:
        broken = Unwritable()
        recovery.failed(broken, RuntimeError("lost"))
        assert recovery.settle(10), recovery.report()
        assert [job for job, _ in given_up] == [broken] and "device_recovery_error" in events
        assert recovery.counts["given_up"] == 1
        fine = SimpleNamespace(attempts=1)
        recovery.failed(fine, RuntimeError("lost"))
        assert recovery.settle(10) and runs == [fine]
    finally:
        recovery.close()


def test_an_event_sink_that_fails_loses_no_tile() -> None:
    """The device_error event is sent from the adapter's collecting thread; if sending it fails, the
    tile is still re-run (it was counted pending, so a shutdown would otherwise wait for ever)."""
    def broken_sink(name: str, **fields: Any) -> None:
        raise RuntimeError("the event sink failed")

    runs: list[Any] = []
    recovery, _ = _recovery(runs.append, lambda: ("CPU", False), broken_sink)
    try:
        job = SimpleNamespace(attempts=1)
        recovery.failed(job, RuntimeError("lost"))
        assert recovery.settle(10) and runs == [job]
    finally:
        recovery.close()


class SlowToFail(OpenVINOAdapter):
    """A stick lost mid-stream: its first request fails at once, the later ones only after 2 s each
    (their waits time out), long after the runtime has reopened the device."""

    failed = 0

    def _result(self, request: Any) -> np.ndarray:
        super()._result(request)
        SlowToFail.failed += 1
        if SlowToFail.failed > 1:
            time.sleep(2.0)
        raise RuntimeError("[ NC_ERROR ] injected: device lost")


def test_a_shutdown_after_a_reopen_waits_for_the_replaced_devices_tiles(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_device_as(SlowToFail, monkeypatch)
    SlowToFail.failed = 0
    runtime = Runtime(_settings(reopen_after=1), model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    ground = Ground(runtime.endpoints)
    streamer = Streamer(runtime.endpoints["tiles"], window=4)
    try:
        log = streamer.stream([_tile(i) for i in range(4)])
        assert [ack["status"] for ack in log.acks.values()] == ["accepted"] * 4
        first = ground.results(1, timeout_s=20)
        assert runtime.recovery.report()["reopened"] == 1
        runtime.stop()  # while the lost adapter's three requests are still failing
        rest = ground.results(3, timeout_s=30)
    finally:
        streamer.close()
        runtime.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "runtime did not stop"
    assert sorted(r["tile_id"] for r in first + rest) == [f"scene/{i}" for i in range(4)]
    assert all(r["status"] == "ok" for r in first + rest)


def test_a_tile_the_new_model_cannot_take_is_counted_as_given_up(
        brightness_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_device_as(FailsEveryRequest, monkeypatch)
    four_bands = tmp_path / "fourband"
    make_brightness_bundle(four_bands, name="fourband", bands=4)
    settings = _settings(backoff_s=0.5, max_backoff_s=0.5, reopen_after=100, max_attempts=20)
    with runtime_thread(settings, brightness_bundle) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"], window=4)
        client = ControlClient(runtime.endpoints["control"])
        try:
            streamer.stream([_tile(0)])  # three bands: fails on the first model until the four-band one serves
            assert client.load_model(four_bands)["ok"]
            [result] = ground.results(1, timeout_s=20)
        finally:
            client.close()
            streamer.close()
        recovery = runtime.status()["device_recovery"]
    assert (result["status"], result["reason"]) == ("rejected", "inference_failed")
    assert "cannot take this tile" in result["detail"]
    assert recovery["given_up"] == 1, recovery


class HangsAfterTheFirst(OpenVINOAdapter):
    """A stick lost mid-stream whose first request fails and whose later ones never return."""

    calls = 0
    release = threading.Event()

    def _result(self, request: Any) -> np.ndarray:
        super()._result(request)
        HangsAfterTheFirst.calls += 1
        if HangsAfterTheFirst.calls > 1:
            HangsAfterTheFirst.release.wait()  # hung until the test ends
        raise RuntimeError("[ NC_ERROR ] injected: device lost")


def test_a_shutdown_does_not_wait_for_ever_for_a_replaced_device_that_hangs(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting for a replaced device's requests must not hang a shutdown on a device that never
    answers: it is waited for twice [health] hang_timeout_s, then left to the senders' resends."""
    first_device_as(HangsAfterTheFirst, monkeypatch)
    HangsAfterTheFirst.calls = 0
    HangsAfterTheFirst.release.clear()
    settings = _settings(reopen_after=1)
    settings = replace(settings, health=MappingProxyType({**settings.health, "hang_timeout_s": 1.0}))
    runtime = Runtime(settings, model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    ground = Ground(runtime.endpoints)
    streamer = Streamer(runtime.endpoints["tiles"], window=4)
    try:
        streamer.stream([_tile(i) for i in range(3)])
        ground.results(1, timeout_s=20)  # the first, re-run on the reopened device
        assert_stops_within(runtime, thread, 15, "the shutdown waited for a hung device")
    finally:
        HangsAfterTheFirst.release.set()
        streamer.close()
        runtime.stop()
        thread.join(timeout=30)
