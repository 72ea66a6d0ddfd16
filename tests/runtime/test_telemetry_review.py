"""Review: declarations against reality (events, telemetry, commands, Health), each test failing
on the code before its fix."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from affine import Affine

import runtime.results as results_module
from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import config, interface, protocol
from runtime.client import ControlClient
from runtime.server import Runtime, Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground


def _tiles(n: int) -> list[Tile]:
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    return [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(n)]


@pytest.mark.parametrize("cmd", [["status"], {"name": "status"}])
def test_a_command_name_of_the_wrong_type_is_answered_with_an_error(
    running_runtime: Runtime, ipc_endpoints: dict[str, str], cmd: object
) -> None:
    """{"cmd": ["status"]} (a list, not a string) must get {"ok": false, "error": ...}: a REQ client
    that gets no reply is stuck, and a client's typo is not the runtime's internal_error (a bug)."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(ipc_endpoints["control"])
    try:
        sock.send(protocol.dumps({"v": protocol.PROTOCOL_VERSION, "cmd": cmd}))
        assert sock.poll(5000), "no reply to a command whose name is not a string"
        reply = protocol.loads(sock.recv())
        assert reply["ok"] is False and "unknown command" in reply["error"]
    finally:
        sock.close()
    counters = ControlClient(ipc_endpoints["control"]).status()["counters"]
    assert counters["internal_errors"] == 0


def _events(sock: zmq.Socket, wait_s: float = 0.5) -> list[dict]:
    out, deadline = [], time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if sock.poll(50):
            out.append(protocol.loads(sock.recv_multipart()[1]))
    return out


def test_the_discarded_result_of_a_restarted_worker_is_not_counted(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """A vectorise worker stuck on a tile is restarted and its tile done by a fresh worker (ok). When
    the stuck one wakes up and its post-processing fails, its result is discarded: it must not count
    as a rejection too (tiles_rejected, rejected_by_reason, a tile_rejected event for a tile that was
    served ok), nor drive in_flight (accepted - ok - inference_failed) below zero."""
    real = results_module.vectorize
    hang, release = threading.Event(), threading.Event()
    stuck: list[threading.Thread] = []

    def hangs_once_then_fails(*args: object, **kwargs: object) -> list:
        if not hang.is_set():
            hang.set()
            stuck.append(threading.current_thread())
            release.wait(30)
            raise RuntimeError("GDAL gave up after the hang")
        return real(*args, **kwargs)

    monkeypatch.setattr(results_module, "vectorize", hangs_once_then_fails)
    cfg = config.defaults()
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 0.5, "watchdog_file": ""}
    events = zmq.Context.instance().socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"event")
    events.connect(ipc_endpoints["telemetry"])
    try:
        with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
            ground = Ground(ipc_endpoints)
            Streamer(ipc_endpoints["tiles"]).stream(_tiles(6))
            got = ground.results(6, timeout_s=20)
            assert sorted(r["status"] for r in got) == ["ok"] * 6
            control = ControlClient(ipc_endpoints["control"])
            assert control.status()["health"]["stages"]["vectorise-0"]["restarts"] == 1
            _events(events)  # what was said up to now
            release.set()
            stuck[0].join(30)
            assert not stuck[0].is_alive()
            late = [e for e in _events(events, 1.0) if e["event"] == "tile_rejected"]
            counters = control.status()["counters"]
        assert late == [], f"a tile served ok was said rejected: {late}"
        assert counters["tiles_ok"] == 6
        assert counters["tiles_rejected"] == 0 and counters["rejected_by_reason"] == {}
        assert counters["in_flight"] == 0
    finally:
        release.set()
        events.close()


def test_an_accepted_tile_lost_in_post_processing_is_a_warning_hi_event(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """An accepted tile rejected because its post-processing raised is as lost as one the device
    failed: both answer ``inference_failed``, and both must raise the ``inference_failed`` event
    (WARNING_HI), not only ``tile_rejected`` (WARNING_LO, the level of a sender's malformed header)."""
    real = results_module.vectorize
    tile_of: dict[int | None, str] = {}
    real_post = Runtime._post_process

    def post_process(self: Runtime, output: object, job: object, t: float) -> tuple[list[bytes], bool]:
        tile_of[threading.current_thread().ident] = job.header["tile_id"]  # type: ignore[attr-defined]
        return real_post(self, output, job, t)  # type: ignore[arg-type]

    def fails_on_tile_2(*args: object, **kwargs: object) -> list:
        if tile_of.get(threading.current_thread().ident) == "s/2":
            raise RuntimeError("a geometry GEOS cannot take")
        return real(*args, **kwargs)

    monkeypatch.setattr(results_module, "vectorize", fails_on_tile_2)
    monkeypatch.setattr(Runtime, "_post_process", post_process)
    events = zmq.Context.instance().socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"event")
    events.connect(ipc_endpoints["telemetry"])
    try:
        with runtime_thread(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints), brightness_bundle):
            ground = Ground(ipc_endpoints)
            time.sleep(0.5)  # the subscriber reconnects to the telemetry socket bound after it connected
            Streamer(ipc_endpoints["tiles"]).stream(_tiles(4))
            got = {r["tile_id"]: r for r in ground.results(4, timeout_s=20)}
            assert (got["s/2"]["status"], got["s/2"]["reason"]) == ("rejected", "inference_failed")
            said = _events(events, 1.5)
        lost = [e for e in said if e.get("tile_id") == "s/2" and e["severity"] == interface.EVENTS["inference_failed"]]
        assert [e["event"] for e in lost] == ["inference_failed"], said
    finally:
        events.close()


def test_every_status_field_is_declared_and_documented(running_runtime: Runtime, ipc_endpoints: dict[str, str]) -> None:
    """runtime/interface.py TELEMETRY is the declaration of status()'s channels, and docs/protocol.md
    describes each: a field the code reports must be in both, and a declared one must be reported."""
    status = ControlClient(ipc_endpoints["control"]).status()
    reported = (set(status) - {"v", "ok"}) | set(status["counters"])
    assert reported - set(interface.TELEMETRY) == set(), "reported, not declared"
    assert set(interface.TELEMETRY) - reported == set(), "declared, not reported"
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    assert [name for name in sorted(reported) if f"`{name}`" not in doc] == [], "not in docs/protocol.md"


def test_every_supervisor_line_is_declared_with_a_severity_and_documented(capsys: pytest.CaptureFixture[str]) -> None:
    """The supervisor's JSON lines on stderr are events too: each name it says is declared (with a
    severity, as runtime/interface.py EVENTS gives the runtime's) and described in docs/reliability.md.
    (runtime_restarted was named only in a docstring, supervisor_gave_up nowhere.)"""
    import json
    import re

    from runtime import supervisor

    source = Path(supervisor.__file__).read_text()
    said = set(re.findall(r'_say\(\s*"([a-z_]+)"', source))
    assert said == set(supervisor.EVENTS)
    doc = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    assert [name for name in sorted(said) if f"`{name}`" not in doc] == []
    supervisor._say("supervisor_gave_up", reason="test", restarts=3)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["severity"] == supervisor.EVENTS["supervisor_gave_up"]


def test_a_command_that_meets_a_bug_is_answered_and_reported(
    monkeypatch: pytest.MonkeyPatch, running_runtime: Runtime, ipc_endpoints: dict[str, str]
) -> None:
    """A bug inside a command handler left its REQ client without a reply for ever; it is answered
    (ok false, the error) and still counted as an internal error. A version of true (== 1 in Python)
    is no version."""
    def broken(self: Runtime, request: dict, frames: list[bytes]) -> dict:
        raise KeyError("a bug")

    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(ipc_endpoints["control"])
    try:
        sock.send(protocol.dumps({"v": True, "cmd": "status"}))
        assert sock.poll(5000)
        assert protocol.loads(sock.recv())["ok"] is False
        monkeypatch.setattr(Runtime, "_cmd_status", broken)
        sock.send(protocol.dumps({"v": protocol.PROTOCOL_VERSION, "cmd": "status"}))
        assert sock.poll(5000), "no reply to a command that met a bug"
        reply = protocol.loads(sock.recv())
        assert reply["ok"] is False and "internal error" in reply["error"], reply
    finally:
        sock.close()
    monkeypatch.undo()
    assert ControlClient(ipc_endpoints["control"]).status()["counters"]["internal_errors"] == 1
