"""Device names as OpenVINO lists them: numbered sticks resolve to their family."""

from __future__ import annotations

from runtime.device import MYRIAD_LIKE, device_family


def test_numbered_devices_resolve_to_their_family() -> None:
    assert device_family("MYRIAD.1.2-ma2480") == "MYRIAD" and device_family("MYRIAD") == "MYRIAD"
    assert device_family("NPU.0") == "NPU" and device_family("CPU") == "CPU"
    assert device_family("myriadx-emu") == "myriadx-emu"
    # so the target check and the latency estimate apply to every Myriad X stick, numbered or not
    assert all(device_family(d) in MYRIAD_LIKE for d in ("MYRIAD.1.2-ma2480", "MYRIAD.3.1-ma2480", "myriadx-emu"))
