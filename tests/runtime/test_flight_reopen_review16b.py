"""A reopen under ``device = "flight"`` (the flight default) that lands on another device (review 16b).

``flight`` is resolved again at every open: when the stick it picked is lost and no longer listed, the
reopen resolves ``flight`` to the twin. That is a replacement of the device, by one that computes
differently, but it was reported as ``device_reopened`` (ACTIVITY_HI, ``reopened`` counted) and the
model went onto the twin without the acceptance test a replacement runs (docs/reliability.md, *A
lost device*). The stick is stood in for by the CPU, listed as the flight default until its requests
fail; the model, runtime, sockets and recovery are the real ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runtime.device as device_module
import runtime.server as server_module
from runtime import config
from runtime.device import OpenVINOAdapter, open_device
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_device_loss import TILES, _run


class Bus:
    """What is attached: the stand-in stick until it is lost."""

    stick = True

    def flight_default(self, core: Any = None) -> tuple[str, str]:
        return ("CPU", "the stand-in stick is attached") if self.stick else (
            "myriadx-emu", "no MYRIAD or NPU attached: using the Myriad X twin")


class LostStick(OpenVINOAdapter):
    """Runs for real until request ``fail_from``; then fails every request and leaves the bus."""

    def __init__(self, *args: Any, bus: Bus, fail_from: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.bus, self.fail_from, self.requests = bus, fail_from, 0

    def _result(self, request: Any) -> np.ndarray:
        self.requests += 1  # one collecting thread
        output = super()._result(request)
        if self.requests >= self.fail_from:
            self.bus.stick = False
            raise RuntimeError("[ NC_ERROR ] injected: the stick is gone")
        return output


def test_a_flight_reopen_that_lands_on_the_twin_is_a_replacement(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bus, opened = Bus(), []
    monkeypatch.setattr(device_module, "flight_default", bus.flight_default)

    def devices(bundle: Any, device: str, on_complete: Any, **options: Any) -> Any:
        opened.append(device)
        if len(opened) == 1:
            return LostStick(bundle, device, on_complete, bus=bus, fail_from=3, **options)
        return open_device(bundle, device, on_complete, **options)

    monkeypatch.setattr(server_module, "open_device", devices)
    short = Path(tempfile.mkdtemp(prefix="fr-", dir="/tmp"))
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    cfg = config.defaults()
    cfg["device_recovery"].update({"backoff_s": 0.01, "max_backoff_s": 0.05})
    with runtime_thread(Settings.from_config(cfg, device="flight", **endpoints), brightness_bundle) as runtime:
        results, events = _run(runtime)
        assert sorted(r["tile_id"] for r in results) == sorted(f"scene/{i}" for i in range(TILES))
        assert all(r["status"] == "ok" for r in results)
        status = runtime.status()
        assert status["device"] == "myriadx-emu"
        names = [e["event"] for e in events]
        assert "device_reopened" not in names, names
        replaced = [e for e in events if e["event"] == "device_replaced"]
        assert len(replaced) == 1 and replaced[0]["device"] == "myriadx-emu", names
        assert status["device_recovery"]["replaced"] == 1 and status["device_recovery"]["reopened"] == 0
