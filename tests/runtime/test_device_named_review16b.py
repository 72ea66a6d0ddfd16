"""``device = "flight"`` names no device: the one it resolves to (a stick, an NPU or the twin) is what
the model_loaded and started events, the ready line and status name (docs/devices.md: "every report
and status names the device picked"); the events and the ready line said "flight"."""

from __future__ import annotations

from pathlib import Path

from runtime import config
from runtime.server import Runtime
from runtime.settings import Settings


def test_the_events_name_the_device_flight_resolved_to(brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> None:
    settings = Settings.from_config(config.defaults(), device="flight", **ipc_endpoints)
    runtime = Runtime(settings, model=brightness_bundle)
    try:
        loaded = [e for e in runtime.telemetry.pending_events() if e.get("event") == "model_loaded"]
        picked = runtime.status()["device"]
        assert picked != "flight" and runtime.device_in_use == picked
        assert [e["device"] for e in loaded] == [picked], loaded
    finally:
        runtime.stop()
