"""The MYRIAD seams the CPU cannot show, pinned on the 2022.3 API (review findings; sources cited).

1. One Core per process. The 2022.3 Core creates its own plugin object per ``Core()`` (ov::CoreImpl
   keeps a plugin map per Core; intel_myriad api/myriad_api.cpp makes a new Engine each time), and
   the MYRIAD Engine's device pool is a member of that Engine (myriad_plugin.cpp ``_devicePool``).
   AVAILABLE_DEVICES is the *unbooted* sticks (mvnc_api.c ncAvailableDevices: X_LINK_UNBOOTED) plus
   this Engine's own pool (myriad_metrics.cpp AvailableDevicesNames). So a second Core does not see
   a stick the first Core booted: an uplinked model or a reopen with ``device = "flight"`` resolves
   to the twin on the CPU, and with ``device = "MYRIAD"`` is refused as "not available here". With
   one Core the second network goes on the same stick (myriad_executor.cpp openDevice: a booted,
   not-full device of the pool).
2. One stick is listed bare. Core::get_available_devices lists ``MYRIAD.<id>`` only when the
   plugin reports more than one id, else plain ``MYRIAD`` (ie_core.cpp GetAvailableDevices);
   ``MYRIAD.1.2-ma2480`` is still a name OpenVINO compiles for (DEVICE_ID), and the one an operator
   pins on a two-stick payload: it must not be refused when the other stick is gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import ov_api

# Neither test needs the 2022.3 API itself: they run on the current one too (the main suite).

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "default"


def test_adapters_and_device_lookups_share_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a model, resolving ``flight`` and listing devices construct no second Core."""
    from runtime.bundle import read_bundle
    from runtime.device import available_devices, flight_default, open_device, resolve
    from runtime.device_names import attached_devices

    shared = getattr(ov_api, "shared_core", None)
    assert shared is not None, "runtime.ov_api has no process-wide Core"
    shared()  # the one Core exists before the adapters

    class NoSecondCore:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("a second ov.Core(): its MYRIAD plugin cannot see a stick the first one booted")

    monkeypatch.setattr(ov_api, "Core", NoSecondCore)
    bundle = read_bundle(MODEL)
    first = open_device(bundle, "CPU", lambda *_: None, infer_requests=1)
    second = open_device(bundle, "CPU", lambda *_: None, infer_requests=1)  # an uplink while serving
    try:
        assert resolve("flight") == flight_default()[0]
        assert "CPU" in attached_devices() and available_devices()
    finally:
        first.close()
        second.close()


class _OneStick:
    """A payload with one Myriad X: OpenVINO lists it bare, its plugin knows its id."""

    available_devices = ["CPU", "MYRIAD"]

    def get_property(self, device: str, name: str) -> list[str]:
        assert name == "AVAILABLE_DEVICES"
        return {"CPU": [""], "MYRIAD": ["1.2-ma2480"]}[device]


def test_a_pinned_stick_is_accepted_when_it_is_the_only_one() -> None:
    from runtime.device import resolve

    assert resolve("MYRIAD.1.2-ma2480", _OneStick()) == "MYRIAD.1.2-ma2480"
    assert resolve("MYRIAD", _OneStick()) == "MYRIAD"
    for wrong in ("MYRIAD.1.3-ma2480", "MYRIAD.", "CPU.0", "CPU."):
        with pytest.raises(ValueError, match="not available here"):
            resolve(wrong, _OneStick())
