"""A model served on the fallback device after its own device is lost passes the acceptance test
there first, as an uplink must: a model whose golden tile does not reproduce on the fallback device
is not served there (the reopen fails, with the reason), and one that does is.

The lost device is injected where the runtime opens devices (``open_device`` refuses the primary
once it is "lost"); the models, the adapters, the acceptance test and the runtime are real.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runtime.server as server_module
from runtime import config
from runtime.device import open_device
from runtime.golden import with_golden
from runtime.server import Runtime, Settings
from tests.conftest import make_brightness_bundle

PRIMARY, FALLBACK = "myriadx-emu", "CPU"


class LosableDevices:
    """``open_device`` as the runtime calls it, except that the primary device fails to open once lost."""

    def __init__(self) -> None:
        self.lost = False

    def __call__(self, bundle: Any, device: str, on_complete: Any, **options: Any) -> Any:
        if self.lost and device == PRIMARY:
            raise RuntimeError("[ NC_ERROR ] injected: device gone")
        return open_device(bundle, device, on_complete, **options)


def _ramp() -> np.ndarray:
    """Counts 0..255 over the tile: half of it "vessel" for the brightness model, and every
    probability in between, where the twin's FP16 and the CPU's f32 differ (by about 2e-4)."""
    return np.broadcast_to(np.linspace(0, 255, 64 * 64).reshape(64, 64), (3, 64, 64)).astype(np.uint8)


def _runtime(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Runtime, LosableDevices]:
    devices = LosableDevices()
    monkeypatch.setattr(server_module, "open_device", devices)
    short = Path(tempfile.mkdtemp(prefix="fb-", dir="/tmp"))  # ipc paths are limited to ~100 characters
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    cfg = config.defaults()
    cfg["device_recovery"]["fallback_device"] = FALLBACK
    return Runtime(Settings.from_config(cfg, device=PRIMARY, **endpoints), model=bundle), devices


def test_a_model_refused_on_the_fallback_device_is_not_served_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to be served on the CPU without a check, though an uplink there would have been refused."""
    make_brightness_bundle(tmp_path / "b")
    with_golden(tmp_path / "b", _ramp(), device=PRIMARY, max_mean_abs=1e-7)  # the ground: twin-exact
    runtime, devices = _runtime(tmp_path / "b", monkeypatch)
    try:
        lost = runtime.serving
        assert lost is not None and lost.adapter.device == PRIMARY
        devices.lost = True
        with pytest.raises(RuntimeError, match=rf"{FALLBACK}: the model fails its acceptance test there: the golden "
                                               r"tile does not reproduce on this device: mean \|p - expected\| "
                                               r"[0-9.e-]+ \(at most 1e-07\)") as refused:
            runtime._reopen()
        assert "0.0000" not in str(refused.value)  # the measured difference is shown, not rounded away
        assert runtime.serving is lost  # nothing was swapped in
    finally:
        runtime.close()


def test_a_model_that_passes_on_the_fallback_device_is_served_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_brightness_bundle(tmp_path / "b")
    with_golden(tmp_path / "b", _ramp(), device=PRIMARY)  # the default tolerances absorb FP16
    runtime, devices = _runtime(tmp_path / "b", monkeypatch)
    try:
        devices.lost = True
        assert runtime._reopen() == (FALLBACK, True)
        assert runtime.serving is not None and runtime.serving.adapter.device == FALLBACK
    finally:
        runtime.close()
