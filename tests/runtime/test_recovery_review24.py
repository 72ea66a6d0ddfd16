"""Review 24: what counts against the device in recovery, and when a reopen is decided.

* A bug met while a tile is prepared again for its re-run (a model loaded since) is the tile's, not the
  device's: it reached recovery as a device failure, lengthened the streak, was said as a
  ``device_error`` and reopened a device that worked.
* A reopen is decided once the back-off has passed: decided before it, a device that had served a
  tile ok during the back-off (its failure a passing one) was reopened all the same.

As in tests/runtime/test_device_loss.py, the failing device is a real OpenVINO model on the CPU whose
adapter fails on cue; the runtime, its sockets, its model load and its recovery are the real ones.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import runtime.recovery as recovery_module
import runtime.server as server_module
from flightsim.streamer import Streamer
from runtime.client import ControlClient
from runtime.preprocess import Preprocessor
from runtime.server import Runtime
from tests.conftest import drained_events, event_subscriber, runtime_thread
from tests.runtime.test_device_idle_review19 import LOST, LostWhileSet, lost_device
from tests.runtime.test_device_loss_review import (FailsEveryRequest, _one_result, _other_bundle, _settings,
                                                   first_device_as)
from tests.runtime.test_post_processing_review21 import _until
from tests.runtime.test_server import Ground, _tile


def _failed_once(runtime: Runtime) -> bool:
    """Whether the device has failed a request (recovery holds its tile, sleeping its back-off)."""
    return _until(lambda: runtime.status()["device_recovery"]["errors"] >= 1, 10.0)


def test_a_bug_preparing_a_re_run_does_not_count_against_the_device(
        brightness_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device fails tile 0; during the back-off a model is uplinked, whose preparation of the tile
    for the re-run raises (a bug). The tile is given up at once, as one the serving model cannot run,
    with one internal error; the device's streak stays at its one real failure and nothing is reopened.
    Before: a second ``device_error`` (the ValueError), then a reopen of the uplinked model's healthy
    device, and two more runs of the same bug."""
    opened = first_device_as(FailsEveryRequest, monkeypatch)
    prepare = Preprocessor.__call__

    def buggy_on_re_runs(self: Preprocessor, pixels: np.ndarray, header: dict[str, Any]) -> Any:
        if threading.current_thread().name == "device-recovery":  # only the re-run's preparation
            raise ValueError("a bug preparing the tile again")
        return prepare(self, pixels, header)

    monkeypatch.setattr(Preprocessor, "__call__", buggy_on_re_runs)
    other = _other_bundle(tmp_path)
    # A back-off long enough for the uplink to finish within it, so the re-run meets the new model.
    settings = _settings(backoff_s=4.0, max_backoff_s=4.0, reopen_after=2, max_attempts=3)
    with runtime_thread(settings, brightness_bundle) as runtime, \
            event_subscriber(runtime.endpoints["telemetry"]) as events:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"], window=2)
        client = ControlClient(runtime.endpoints["control"])
        try:
            assert streamer.stream([_tile(0)]).acks["scene/0"]["status"] == "accepted"
            assert _failed_once(runtime)
            assert client.load_model(other)["ok"]
            result = _one_result(ground, timeout_s=30.0)
            status = runtime.status()
            device_errors = drained_events(events, "device_error")
        finally:
            client.close()
            streamer.close()
    recovery = status["device_recovery"]
    assert recovery["errors"] == 1 and recovery["consecutive_failures"] == 1, recovery
    assert recovery["reopened"] == 0 and recovery["given_up"] == 1, recovery
    assert (result["tile_id"], result["status"], result["reason"]) == ("scene/0", "rejected", "inference_failed")
    assert "preparing the tile for its re-run raised ValueError" in result["detail"], result["detail"]
    assert [e for e in device_errors if "ValueError" in e["detail"]] == [], device_errors
    assert opened == ["brightness", "other"], opened  # no reopen of the uplinked model's device
    assert status["counters"]["internal_errors"] == 1 and status["counters"]["in_flight"] == 0, status["counters"]


def test_a_device_that_serves_ok_during_the_back_off_is_not_reopened(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``reopen_after = 1``: tile 0's failure calls for a reopen. During its back-off the device serves
    tile 1 ok, ending the streak, so tile 0 is re-run on the same device, ok, and nothing is reopened.
    Before: the reopen decided before the sleep was carried out after it (``device_reopened``, a
    recompile, on a stick seconds of it, of a device that worked)."""
    opened: list[str] = []

    def devices(bundle: Any, device: str, on_complete: Any, **options: Any) -> LostWhileSet:
        opened.append(device)
        return LostWhileSet(bundle, device, on_complete, **options)

    monkeypatch.setattr(server_module, "open_device", devices)
    settings = _settings(backoff_s=2.0, max_backoff_s=2.0, reopen_after=1, max_attempts=4)
    with lost_device(settings, brightness_bundle) as (runtime, ground, streamer):
        streamer.stream([_tile(0)])
        assert _failed_once(runtime)
        LOST.clear()  # the failure was a passing one: the device serves again
        streamer.stream([_tile(1)])
        first = _one_result(ground, timeout_s=1.5)  # within tile 0's back-off
        assert (first["tile_id"], first["status"]) == ("scene/1", "ok"), first
        second = _one_result(ground, timeout_s=15.0)
        assert (second["tile_id"], second["status"]) == ("scene/0", "ok"), second
        recovery = runtime.status()["device_recovery"]
    assert recovery["reopened"] == 0 and recovery["retries"] == 1 and recovery["state"] == "ok", recovery
    assert opened == ["CPU"], opened


def test_tiles_that_failed_together_wait_one_back_off_together(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four tiles fail together (a stick reset with four requests on it) and the device is back at once:
    all four are re-run after one back-off (1 s). Before, each waited its own back-off after the one
    before: the last came back after four (4 s), and with the default 5 s cap, 20 s for four tiles.
    The back-offs are read from what recovery asks to sleep (it still sleeps), not from the wall
    clock of the whole run, which a loaded machine stretches."""
    monkeypatch.setattr(server_module, "open_device",
                        lambda bundle, device, on_complete, **options: LostWhileSet(bundle, device, on_complete,
                                                                                   **options))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(recovery_module, "time", SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    settings = _settings(backoff_s=1.0, max_backoff_s=1.0, reopen_after=100, max_attempts=4)
    with lost_device(settings, brightness_bundle, window=4) as (runtime, ground, streamer):
        streamer.stream([_tile(i) for i in range(4)])
        assert _until(lambda: runtime.status()["device_recovery"]["errors"] >= 4, 10.0)
        LOST.clear()
        results = ground.results(4, timeout_s=15.0)
        recovery = runtime.status()["device_recovery"]
    assert sorted(r["tile_id"] for r in results) == [f"scene/{i}" for i in range(4)]
    assert all(r["status"] == "ok" for r in results), results
    assert recovery["errors"] == 4 and recovery["retries"] == 4 and recovery["given_up"] == 0, recovery
    # one back-off of 1 s in all (the others' ran meanwhile), where each waited its own: 4 s
    assert len(slept) == 4 and sum(slept) < 2.0, f"recovery slept {slept} s for four tiles that failed together"
