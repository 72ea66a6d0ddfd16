"""A device lost mid-stream (runtime.recovery): tiles re-run, the device reopened or replaced, every
accepted tile processed once and delivered, and telemetry saying what happened.

The failing device is a real OpenVINO model on the CPU whose adapter fails every request from the
Nth on, the way a reset or unplugged stick fails them (the plugin raises on wait); the runtime, its
sockets and its recovery are the real ones.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

import runtime.server as server_module
from flightsim.streamer import Streamer
from runtime import config, protocol
from runtime.device import OpenVINOAdapter, open_device
from runtime.server import Runtime, Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground, _tile

TILES = 24


class LostDevice(OpenVINOAdapter):
    """The model runs for real until request ``fail_from``; from then on every request fails."""

    def __init__(self, *args: Any, fail_from: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fail_from = fail_from
        self.requests = 0
        self._count_lock = threading.Lock()

    def _result(self, request: Any) -> np.ndarray:
        with self._count_lock:
            self.requests += 1
            n = self.requests
        output = super()._result(request)
        if n >= self.fail_from:
            raise RuntimeError(f"[ NC_ERROR ] injected: device lost at request {self.fail_from} (this is {n})")
        return output


class Devices:
    """What ``open_device`` gives the runtime: the lost device first, then whatever ``reopen`` says."""

    def __init__(self, fail_from: int, reopen: str):
        self.fail_from, self.reopen, self.opened = fail_from, reopen, []

    def __call__(self, bundle: Any, device: str, on_complete: Any, **options: Any) -> Any:
        self.opened.append(device)
        if len(self.opened) == 1 or self.reopen == "lost_again":
            return LostDevice(bundle, device, on_complete, fail_from=self.fail_from, **options)
        if self.reopen == "gone" and device == "CPU":
            raise RuntimeError("[ NC_ERROR ] injected: no device CPU")
        return open_device(bundle, device, on_complete, **options)


def _serve(bundle: Path, devices: Devices, monkeypatch: pytest.MonkeyPatch, **recovery: Any) -> Iterator[Runtime]:
    monkeypatch.setattr(server_module, "open_device", devices)
    short = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    cfg = config.defaults()
    cfg["device_recovery"].update({"backoff_s": 0.01, "max_backoff_s": 0.05, **recovery})
    with runtime_thread(Settings.from_config(cfg, device="CPU", **endpoints), bundle) as runtime:
        yield runtime


def _run(runtime: Runtime) -> tuple[list[dict], list[dict]]:
    """Stream TILES tiles; return every result and every event published meanwhile."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"event")
    sub.connect(runtime.endpoints["telemetry"])
    ground = Ground(runtime.endpoints)
    streamer = Streamer(runtime.endpoints["tiles"], window=4)
    log = streamer.stream([_tile(i) for i in range(TILES)])
    assert all(a["status"] == "accepted" for a in log.acks.values()), log.acks
    results = ground.results(TILES, timeout_s=60)
    assert not ground.sock.poll(300), "a tile produced a second result"
    streamer.close()
    events = []
    while sub.poll(200):
        events.append(protocol.loads(sub.recv_multipart()[1]))
    sub.close()
    return results, events


@pytest.fixture()
def lost_then_back(brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Runtime, Devices]]:
    devices = Devices(fail_from=5, reopen="back")
    yield from ((rt, devices) for rt in _serve(brightness_bundle, devices, monkeypatch))


def test_a_device_lost_mid_stream_is_reopened_and_no_tile_is_lost(lost_then_back: tuple[Runtime, Devices]) -> None:
    runtime, devices = lost_then_back
    results, events = _run(runtime)
    assert sorted(r["tile_id"] for r in results) == sorted(f"scene/{i}" for i in range(TILES))
    assert all(r["status"] == "ok" and r["detections"]["features"] for r in results), results
    names = [e["event"] for e in events]
    assert "device_error" in names and "device_reopened" in names, names
    assert devices.opened == ["CPU", "CPU"]
    status = runtime.status()
    recovery = status["device_recovery"]
    assert recovery["errors"] >= 1 and recovery["reopened"] == 1 and recovery["given_up"] == 0
    assert recovery["state"] == "ok" and status["counters"]["tiles_ok"] == TILES
    assert status["health"]["stages"]["device"]["hung"] is False


def test_a_device_that_cannot_be_reopened_is_replaced_by_the_fallback(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    devices = Devices(fail_from=3, reopen="gone")
    for runtime in _serve(brightness_bundle, devices, monkeypatch, fallback_device="myriadx-emu"):
        results, events = _run(runtime)
        assert sorted(r["tile_id"] for r in results) == sorted(f"scene/{i}" for i in range(TILES))
        assert all(r["status"] == "ok" for r in results)
        replaced = [e for e in events if e["event"] == "device_replaced"]
        assert replaced and replaced[0]["device"] == "myriadx-emu" and replaced[0]["severity"] == "WARNING_HI"
        assert runtime.status()["device"] == "myriadx-emu"


def test_tiles_the_device_keeps_failing_are_rejected_once_each_never_lost(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    devices = Devices(fail_from=1, reopen="lost_again")
    for runtime in _serve(brightness_bundle, devices, monkeypatch, max_attempts=2):
        results, events = _run(runtime)
        assert sorted(r["tile_id"] for r in results) == sorted(f"scene/{i}" for i in range(TILES))
        assert {(r["status"], r["reason"]) for r in results} == {("rejected", "inference_failed")}
        recovery = runtime.status()["device_recovery"]
        assert recovery["given_up"] == TILES and recovery["state"] == "recovering"
        assert any(e["event"] == "inference_failed" and "after 2 attempts" in e["detail"] for e in events)
