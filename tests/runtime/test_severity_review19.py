"""Event severities mean what F´ means by them: ``FATAL`` only where the component cannot go on.

``internal_error`` was declared FATAL (runtime/interface.py) although the payload serves on after
it: a bug met on one tile refuses that tile (reason ``internal_error``) and the next tile is served.
A ground that treats FATAL as "this payload is gone" (restart it, stop sending) would act on a
payload still serving. Checked on a real runtime, its sockets and a real OpenVINO model on the CPU.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import zmq

import runtime.server as server_module
from runtime import config, interface, protocol
from runtime.on_the_earth import check_on_the_earth
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground, _tile


def test_a_bug_met_on_one_tile_is_not_fatal_the_runtime_serves_the_next(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    def broken_on_tile_0(header: dict[str, Any], crs: object) -> None:
        if header["tile_id"] == "scene/0":
            raise KeyError("a bug met on this tile only")
        check_on_the_earth(header, crs)

    monkeypatch.setattr(server_module, "check_on_the_earth", broken_on_tile_0)
    events = zmq.Context.instance().socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"event")
    events.connect(ipc_endpoints["telemetry"])
    try:
        with runtime_thread(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints),
                            brightness_bundle) as runtime:
            ground = Ground(ipc_endpoints)
            time.sleep(0.5)  # the subscriber reconnects to the telemetry socket bound after it connected
            src = zmq.Context.instance().socket(zmq.DEALER)
            src.setsockopt(zmq.LINGER, 0)
            src.connect(ipc_endpoints["tiles"])
            try:
                for i in range(2):
                    src.send_multipart(_tile(i).frames())
                results = {r["tile_id"]: r for r in ground.results(2, timeout_s=20)}
            finally:
                src.close()
            said, deadline = [], time.monotonic() + 1
            while time.monotonic() < deadline:
                if events.poll(50):
                    said.append(protocol.loads(events.recv_multipart()[1]))
            state = runtime.status()["state"]
    finally:
        events.close()
    assert (results["scene/0"]["status"], results["scene/0"]["reason"]) == ("rejected", "internal_error")
    assert results["scene/1"]["status"] == "ok" and state == "serving"  # it went on
    bugs = [e for e in said if e["event"] == "internal_error"]
    assert len(bugs) == 1 and bugs[0]["severity"] == "WARNING_HI", bugs


def test_no_runtime_event_is_declared_fatal() -> None:
    """Every runtime event is raised by a payload that serves on (docs/protocol.md, "Telemetry"):
    none may say FATAL, which only the supervisor's ``supervisor_gave_up`` (it stops) does."""
    assert [name for name, level in interface.EVENTS.items() if level == "FATAL"] == []
