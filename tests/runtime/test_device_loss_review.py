"""Device loss meeting the rest of the runtime: a device that refuses requests on submit, a model
uplinked while a tile is being re-run or while the device is being reopened, a device that reopens
and fails again, and a fallback device misnamed in the configuration.

As in tests/runtime/test_device_loss.py, the failing device is a real OpenVINO model on the CPU
whose adapter fails on cue; the runtime, its sockets and its recovery are the real ones.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import runtime.server as server_module
from flightsim.streamer import Streamer
from runtime import config
from runtime.bundle import Bundle, read_bundle, write_bundle
from runtime.client import ControlClient
from runtime.device import OpenVINOAdapter, open_device
from runtime.recovery import DeviceRecovery
from runtime.server import Runtime, Settings
from runtime.store import BundleStore
from tests.conftest import make_brightness_bundle, runtime_thread
from tests.runtime.test_device_loss import TILES, Devices, _run
from tests.runtime.test_server import Ground, _tile


class RefusesSubmits(OpenVINOAdapter):
    """The model runs for real until submission ``fail_from``; from then on ``start_async`` raises,
    as a lost stick may (and as an adapter already closed does)."""

    def __init__(self, *args: Any, fail_from: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fail_from, self.submits = fail_from, 0

    def start_async(self, batch: np.ndarray, userdata: Any) -> None:
        self.submits += 1  # only the main loop submits to the first adapter
        if self.submits >= self.fail_from:
            raise RuntimeError(f"[ NC_ERROR ] injected: device lost at submission {self.fail_from}")
        super().start_async(batch, userdata)


class FailsEveryRequest(OpenVINOAdapter):
    """A device lost before the first tile: every request fails on wait."""

    def _result(self, request: Any) -> np.ndarray:
        super()._result(request)
        raise RuntimeError("[ NC_ERROR ] injected: device lost")


def _settings(**recovery: Any) -> Settings:
    short = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    cfg = config.defaults()
    cfg["device_recovery"].update({"backoff_s": 0.01, "max_backoff_s": 0.05, **recovery})
    return Settings.from_config(cfg, device="CPU", **endpoints)


def _other_bundle(tmp_path: Path, name: str = "other") -> Path:
    out = tmp_path / name
    make_brightness_bundle(out, name=name)
    return out


def first_device_as(kind: type, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first adapter the runtime opens is a ``kind`` (a device that fails on cue), the later ones
    (reopens, uplinks) plain ones; returns the names of the bundles opened, in order."""
    opened: list[str] = []

    def devices(bundle: Bundle, device: str, on_complete: Any, **options: Any) -> Any:
        opened.append(bundle.name)
        return (kind if len(opened) == 1 else OpenVINOAdapter)(bundle, device, on_complete, **options)

    monkeypatch.setattr(server_module, "open_device", devices)
    return opened


def _one_result(ground: Ground, timeout_s: float = 15.0) -> dict[str, Any]:
    results = ground.results(1, timeout_s=timeout_s)
    return results[0]


def test_a_device_that_refuses_requests_on_submit_is_recovered(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """start_async raising is a device failure like a request failing on wait: every tile is
    accepted, re-run on the reopened device and delivered; it was once rejected, and the device
    never reopened."""
    opened: list[str] = []

    def devices(bundle: Any, device: str, on_complete: Any, **options: Any) -> Any:
        opened.append(device)
        if len(opened) == 1:
            return RefusesSubmits(bundle, device, on_complete, fail_from=5, **options)
        return open_device(bundle, device, on_complete, **options)

    monkeypatch.setattr(server_module, "open_device", devices)
    with runtime_thread(_settings(), brightness_bundle) as runtime:
        results, events = _run(runtime)  # asserts every tile accepted, and each delivered once
        assert sorted(r["tile_id"] for r in results) == sorted(f"scene/{i}" for i in range(TILES))
        assert all(r["status"] == "ok" for r in results), results
        names = [e["event"] for e in events]
        assert "device_error" in names and "device_reopened" in names, names
        assert opened == ["CPU", "CPU"]
        recovery = runtime.status()["device_recovery"]
        assert recovery["reopened"] == 1 and recovery["given_up"] == 0 and recovery["state"] == "ok"


def test_a_retry_while_a_model_loads_runs_on_the_new_model(
        brightness_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-run during a model load (here, a slow install on flight storage) goes to the model
    serving, never to the adapter the load has closed: the accepted tile is delivered, labelled with
    the new model."""
    opened: list[str] = []

    class Lost(FailsEveryRequest):
        closed, submitted_after_close = False, 0

        def start_async(self, batch: np.ndarray, userdata: Any) -> None:
            if self.closed:
                self.submitted_after_close += 1
            super().start_async(batch, userdata)

        def close(self) -> None:
            self.closed = True
            super().close()

    lost: list[Lost] = []

    def devices(bundle: Bundle, device: str, on_complete: Any, **options: Any) -> Any:
        opened.append(bundle.name)
        if len(opened) == 1:
            lost.append(Lost(bundle, device, on_complete, **options))
            return lost[0]
        return OpenVINOAdapter(bundle, device, on_complete, **options)

    install = BundleStore.install

    def slow_install(self: BundleStore, bundle: Bundle) -> Any:
        if bundle.name == "other":
            time.sleep(1.5)  # re-runs (every 0.3 s) fall into the load
        return install(self, bundle)

    monkeypatch.setattr(server_module, "open_device", devices)
    monkeypatch.setattr(BundleStore, "install", slow_install)
    other = _other_bundle(tmp_path)
    settings = _settings(backoff_s=0.3, max_backoff_s=0.3, reopen_after=100, max_attempts=20)
    with runtime_thread(settings, brightness_bundle) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"], window=4)
        client = ControlClient(runtime.endpoints["control"])
        try:
            assert streamer.stream([_tile(0)]).acks["scene/0"]["status"] == "accepted"
            assert client.load_model(other)["ok"]
            result = _one_result(ground)
            assert (result["tile_id"], result["status"], result["model"]["name"]) == ("scene/0", "ok", "other")
            assert runtime.status()["counters"]["in_flight"] == 0
            assert lost[0].closed and lost[0].submitted_after_close == 0
        finally:
            client.close()
            streamer.close()


class LostAndRefusesOnceClosed(OpenVINOAdapter):
    """Fails every request from the 3rd on; the 4th submission is slow (every request busy, say),
    and lands after the reopen has closed this adapter, which then refuses it as
    ``OpenVINOAdapter.start_async`` does once closing."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.submits, self.results, self.closing = 0, 0, False

    def start_async(self, batch: np.ndarray, userdata: Any) -> None:
        self.submits += 1
        if self.submits == 4:
            time.sleep(1.0)
        if self.closing:
            raise RuntimeError("the adapter is closed")
        super().start_async(batch, userdata)

    def _result(self, request: Any) -> np.ndarray:
        self.results += 1
        output = super()._result(request)
        if self.results >= 3:
            raise RuntimeError("[ NC_ERROR ] injected: device lost")
        return output

    def close(self) -> None:
        self.closing = True
        super().close()


def test_a_tile_submitted_to_an_adapter_closed_meanwhile_is_re_run(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main loop submits to the adapter it read before the reopen replaced and closed it: the
    refusal goes to recovery, and the tile is re-run on the new adapter and delivered."""
    first_device_as(LostAndRefusesOnceClosed, monkeypatch)
    with runtime_thread(_settings(reopen_after=1), brightness_bundle) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"], window=8)
        try:
            log = streamer.stream([_tile(i) for i in range(6)])
            assert all(a["status"] == "accepted" for a in log.acks.values()), log.acks
            results = ground.results(6, timeout_s=15)
        finally:
            streamer.close()
        assert sorted(r["tile_id"] for r in results) == sorted(f"scene/{i}" for i in range(6))
        assert all(r["status"] == "ok" for r in results), results
        assert runtime.status()["counters"]["in_flight"] == 0


def test_a_reopen_that_ends_after_a_model_load_keeps_the_loaded_model(
        brightness_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ground uplinks a model while recovery reopens the lost device: the uplinked model keeps
    serving, the adapter the reopen opened meanwhile is closed, and the tile is run on the new model."""
    opened: list[tuple[str, OpenVINOAdapter]] = []

    def devices(bundle: Bundle, device: str, on_complete: Any, **options: Any) -> Any:
        if not opened:
            adapter = FailsEveryRequest(bundle, device, on_complete, **options)
        else:
            if bundle.name == "brightness":
                time.sleep(2.0)  # reopening a stick takes a while (recompile, import, USB enumeration)
            adapter = open_device(bundle, device, on_complete, **options)
        opened.append((bundle.name, adapter))
        return adapter

    monkeypatch.setattr(server_module, "open_device", devices)
    other = _other_bundle(tmp_path)
    with runtime_thread(_settings(reopen_after=1), brightness_bundle) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"], window=4)
        client = ControlClient(runtime.endpoints["control"])
        try:
            streamer.stream([_tile(0)])  # fails: recovery starts reopening (2 s)
            time.sleep(0.5)
            assert client.load_model(other)["ok"]
            result = _one_result(ground)
            assert (result["status"], result["model"]["name"]) == ("ok", "other")
            assert client.status()["model"]["name"] == "other"
            assert read_bundle(runtime.store.current_path()).name == "other"  # type: ignore[arg-type]
        finally:
            client.close()
            streamer.close()
    assert [name for name, _ in opened] == ["brightness", "other", "brightness"]
    reopened = opened[2][1]
    assert not reopened._collector.is_alive(), "the adapter the reopen opened was leaked"


def test_a_tile_re_run_on_a_new_model_is_prepared_for_it(
        brightness_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tile that failed on model A and is re-run after B was uplinked is normalised as B wants:
    its result, labelled B, is what B gives for the same pixels sent afresh."""
    first_device_as(FailsEveryRequest, monkeypatch)
    a = read_bundle(brightness_bundle)
    manifest = json.loads(json.dumps({k: v for k, v in a.manifest.items() if k not in ("format", "files", "created")}))
    manifest["name"] = "B"
    manifest["input"]["normalization"]["std"] = [1020.0] * 3  # B never sees this ship
    b = tmp_path / "B"
    write_bundle(b, a.files["model.xml"], a.files["model.bin"], manifest)
    settings = _settings(backoff_s=0.5, max_backoff_s=0.5, reopen_after=100, max_attempts=20)
    with runtime_thread(settings, brightness_bundle) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"], window=4)
        client = ControlClient(runtime.endpoints["control"])
        try:
            streamer.stream([_tile(0)])  # fails on A until B serves
            assert client.load_model(b)["ok"]
            rerun = _one_result(ground)
            streamer.stream([_tile(1)])  # the same pixels, fresh on B
            fresh = _one_result(ground)
        finally:
            client.close()
            streamer.close()
    assert (rerun["tile_id"], rerun["status"], rerun["model"]["name"]) == ("scene/0", "ok", "B")
    assert (fresh["status"], fresh["model"]["name"]) == ("ok", "B")
    assert len(rerun["detections"]["features"]) == len(fresh["detections"]["features"]) == 0


def test_a_device_that_reopens_and_fails_again_is_still_failing() -> None:
    """The Health probe's clock runs from the first failure to the first success, across reopens:
    a device that reopens 'fine' and fails every request is seen to stay lost."""
    reopened = threading.Event()

    def reopen() -> tuple[str, bool]:
        reopened.set()
        return "CPU", False

    recovery = DeviceRecovery({"max_attempts": 4, "backoff_s": 0.0, "max_backoff_s": 0.0, "reopen_after": 1},
                              resubmit=lambda job: None, reopen=reopen, give_up=lambda job, exc: None,
                              event=lambda *args, **fields: None)
    try:
        recovery.failed(SimpleNamespace(attempts=1), RuntimeError("[ NC_ERROR ] injected"))
        assert recovery.settle(5) and reopened.is_set()
        time.sleep(0.2)
        assert recovery.failing_for() >= 0.2  # no inference has succeeded since the device failed
        assert recovery.report()["state"] == "recovering" and recovery.report()["reopened"] == 1
        recovery.succeeded()
        assert recovery.failing_for() == 0.0 and recovery.report()["state"] == "ok"
    finally:
        recovery.close()


def test_a_device_that_reopens_and_fails_again_stops_the_watchdog(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: every request fails on every adapter opened, and the device is reopened every two
    failures; the device stage is reported hung while the tile is still being re-run (not only once
    recovery has given up on it and nothing runs any more)."""
    devices = Devices(fail_from=1, reopen="lost_again")
    monkeypatch.setattr(server_module, "open_device", devices)
    settings = _settings(max_attempts=25, backoff_s=0.05, max_backoff_s=0.1, reopen_after=2)
    settings = replace(settings, health={**settings.health, "period_s": 0.2, "hang_timeout_s": 1.0})
    with runtime_thread(settings, brightness_bundle) as runtime:
        streamer = Streamer(runtime.endpoints["tiles"], window=2)
        try:
            streamer.stream([_tile(0)])
            # Both must be seen together: hung while recovery is still re-running the tile (not given
            # up), after at least two reopens. On a loaded host the health check can call the stage
            # hung before the second reopen, so the loop waits for both rather than the first.
            deadline, hung, report = time.monotonic() + 20, False, runtime.recovery.report()
            while time.monotonic() < deadline and not (hung and report["reopened"] >= 2):
                time.sleep(0.05)
                report = runtime.recovery.report()
                hung = runtime.status()["health"]["stages"]["device"]["hung"]
            assert hung, f"device stage never hung; failing for {runtime.recovery.failing_for():.2f} s"
            assert report["given_up"] == 0 and report["reopened"] >= 2, report
        finally:
            streamer.close()


def test_a_misnamed_fallback_device_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"fallback_device.*'myriadx_emu'.*myriadx-emu"):
        Runtime(_settings(fallback_device="myriadx_emu"))


def test_a_twin_or_attached_fallback_device_is_accepted() -> None:
    for fallback in ("myriadx-emu", "CPU"):
        runtime = Runtime(_settings(fallback_device=fallback))
        runtime.close()
