"""A model load on a device that cannot be opened (a stick not attached at boot, or gone since)
serves on ``[device_recovery] fallback_device`` when one is set, as a reopen in flight does.

Before, only a reopen fell back: a payload whose stick had died failed every start, and its
supervisor restarted it forever serving nothing; an uplink after a replacement in flight was refused.
The device that is not there is really absent (a numbered MYRIAD no host has); the runtime, its
sockets, the twin it falls back to and the model are real.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightsim.streamer import Streamer
from runtime import config
from runtime.client import ControlClient
from runtime.server import Runtime, Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground, _tile

ABSENT = "MYRIAD.9.9-ma2480"  # no host has this stick: opening it fails as an unplugged one does
FALLBACK = "myriadx-emu"


def _settings(fallback: str = FALLBACK, device: str = ABSENT) -> Settings:
    short = Path(tempfile.mkdtemp(prefix="fl-", dir="/tmp"))  # ipc paths are limited to ~100 characters
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    cfg = config.defaults()
    cfg["device_recovery"] = {**cfg["device_recovery"], "fallback_device": fallback}
    return Settings.from_config(cfg, device=device, **endpoints)


@pytest.fixture()
def on_fallback(brightness_bundle: Path) -> Iterator[Runtime]:
    with runtime_thread(_settings(), brightness_bundle) as runtime:
        yield runtime


def test_a_start_without_its_device_serves_on_the_fallback_and_says_so(on_fallback: Runtime) -> None:
    runtime = on_fallback
    status = runtime.status()
    assert status["device"] == FALLBACK and status["model"] is not None
    assert status["device_recovery"]["replaced"] == 1
    ground = Ground(runtime.endpoints)
    streamer = Streamer(runtime.endpoints["tiles"], window=4)
    log = streamer.stream([_tile(i) for i in range(6)])
    streamer.close()
    assert all(a["status"] == "accepted" for a in log.acks.values()), log.acks
    results = ground.results(6, timeout_s=60)
    assert sorted(r["tile_id"] for r in results) == sorted(f"scene/{i}" for i in range(6))
    assert all(r["status"] == "ok" for r in results), results


def test_the_replacement_at_start_is_an_event_naming_the_device_and_why(brightness_bundle: Path) -> None:
    runtime = Runtime(_settings(), model=brightness_bundle)
    try:
        events = list(runtime.telemetry.pending_events())
    finally:
        runtime.close()
    replaced = [e for e in events if e["event"] == "device_replaced"]
    assert len(replaced) == 1 and replaced[0]["device"] == FALLBACK and replaced[0]["severity"] == "WARNING_HI"
    assert ABSENT in replaced[0]["detail"] and "not available here" in replaced[0]["detail"]
    loaded = [e for e in events if e["event"] == "model_loaded"]
    assert loaded and loaded[-1]["device"] == FALLBACK


def test_an_uplink_while_the_device_is_gone_lands_on_the_fallback(on_fallback: Runtime, tmp_path: Path) -> None:
    from tests.conftest import make_brightness_bundle

    make_brightness_bundle(tmp_path / "next", name="next")
    reply = ControlClient(on_fallback.endpoints["control"]).load_model(tmp_path / "next")
    assert reply["ok"], reply
    status = on_fallback.status()
    assert status["device"] == FALLBACK and status["model"]["name"] == "next"
    assert status["device_recovery"]["replaced"] == 2


def test_without_a_fallback_a_start_without_its_device_is_refused(brightness_bundle: Path) -> None:
    with pytest.raises(ValueError, match=rf"{ABSENT}.*not available here"):
        Runtime(_settings(fallback=""), model=brightness_bundle)


def test_a_fallback_that_cannot_open_either_names_both_failures(brightness_bundle: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.server as server_module

    real = server_module.open_device

    def twin_broken(bundle, device, on_complete, **options):  # type: ignore[no-untyped-def]
        if device == FALLBACK:
            raise RuntimeError("injected: the twin cannot compile")
        return real(bundle, device, on_complete, **options)

    monkeypatch.setattr(server_module, "open_device", twin_broken)
    with pytest.raises(RuntimeError, match=rf"on the device \({ABSENT}: .*not available here.*\) nor on the "
                                           rf"fallback_device \({FALLBACK}: injected: the twin cannot compile\)"):
        Runtime(_settings(), model=brightness_bundle)


def test_a_model_the_attached_device_cannot_open_is_refused_not_flown_on_the_fallback(
        brightness_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device is there and serves; an uplinked model it fails to compile is the model's fault: refused,
    the old model serving on, not the new one flown on the twin (the compile failure is injected where the
    runtime opens devices; the device, CPU, is really attached)."""
    import runtime.server as server_module
    from runtime.client import ControlClient, ControlError
    from tests.conftest import make_brightness_bundle

    real = server_module.open_device

    def refuses_next(bundle, device, on_complete, **options):  # type: ignore[no-untyped-def]
        if bundle.name == "next" and device == "CPU":
            raise RuntimeError("injected: the plugin cannot compile this IR")
        return real(bundle, device, on_complete, **options)

    monkeypatch.setattr(server_module, "open_device", refuses_next)
    make_brightness_bundle(tmp_path / "next", name="next")
    with runtime_thread(_settings(device="CPU"), brightness_bundle) as runtime:
        with pytest.raises(ControlError, match="cannot compile this IR"):
            ControlClient(runtime.endpoints["control"]).load_model(tmp_path / "next")
        status = runtime.status()
        assert status["device"] == "CPU" and status["model"]["name"] == "brightness"
        assert status["device_recovery"]["replaced"] == 0
    with pytest.raises(RuntimeError, match="cannot compile this IR"):  # nor at a start
        Runtime(_settings(device="CPU"), model=tmp_path / "next")
