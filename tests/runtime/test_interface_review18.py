"""Review: the declared interface (runtime/interface.py) against what a real runtime does: every event
it can raise, the counters at the end of a stream with bad tiles and resends, and the Health ping of
the output stage."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.tiles import Tile
from runtime import config, delivery, interface, protocol
from runtime.client import ControlClient
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground

ROOT = Path(__file__).parents[2]


def _tile(i: int, size: int = 64) -> Tile:
    pixels = np.zeros((3, size, size), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    pixels[0, 0, 0] = i % 256  # each tile its own checksum
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    return Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, size, size))


def test_every_event_the_runtime_raises_is_declared_and_documented() -> None:
    """Each event name raised anywhere in runtime/ (``_event``, ``event``, ``_emit``, ``_say``) is in
    interface.EVENTS (which gives its severity, and without which Telemetry.event raises KeyError on
    the raising thread), each declared one is raised somewhere, and docs/protocol.md names each."""
    raised = set()
    for path in (ROOT / "runtime").glob("*.py"):
        if path.name == "supervisor.py":  # its own EVENTS, checked in test_telemetry_review.py
            continue
        # a name, or two in `"a" if x else "b"` (recovery's device_replaced / device_reopened)
        for pair in re.findall(r'(?:_event|\.event|_emit|_say)\(\s*"([a-z_]+)"(?: if \w+ else "([a-z_]+)")?',
                               path.read_text()):
            raised |= set(pair) - {""}
    assert raised - set(interface.EVENTS) == set(), "raised, not declared"
    assert set(interface.EVENTS) - raised == set(), "declared, never raised"
    doc = (ROOT / "docs" / "protocol.md").read_text()
    assert [name for name in sorted(interface.EVENTS) if f"`{name}`" not in doc] == []
    levels = {"FATAL", "WARNING_HI", "WARNING_LO", "COMMAND", "ACTIVITY_HI", "ACTIVITY_LO", "DIAGNOSTIC"}
    assert set(interface.EVENTS.values()) <= levels


def test_counters_add_up_after_a_stream_with_bad_tiles_and_resends(
    brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """8 good tiles, 4 refused before acceptance (a corrupted copy of an accepted tile, a header that
    is not JSON, a missing pixel frame, a CRS nobody knows), and 6 resends of accepted tiles: at the
    end received = accepted + refused + duplicates, results_sent = ok + rejected, nothing in flight,
    and the telemetry socket's last status says the same as the status command."""
    cfg = config.defaults()
    cfg["telemetry"] = {**cfg["telemetry"], "period_s": 0.2}
    ctx = zmq.Context.instance()
    tel = ctx.socket(zmq.SUB)
    tel.setsockopt(zmq.SUBSCRIBE, b"telemetry")
    tel.connect(ipc_endpoints["telemetry"])
    src = ctx.socket(zmq.DEALER)
    src.setsockopt(zmq.LINGER, 0)
    try:
        with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
            ground = Ground(ipc_endpoints)
            src.connect(ipc_endpoints["tiles"])
            good = [_tile(i).frames() for i in range(8)]
            header = protocol.loads(good[2][0])
            bad = [[good[0][0], bytes(reversed(good[0][1]))], [b"not json", b"x"], [good[1][0]],
                   [protocol.dumps({**header, "crs": "EPSG:999999"}), good[2][1]]]
            for frames in good + bad + good[:3]:
                src.send_multipart(frames)
            got = ground.results(12, timeout_s=30)
            for frames in good[:3]:  # resent after their results went out
                src.send_multipart(frames)
            time.sleep(1.0)
            status = ControlClient(ipc_endpoints["control"]).status()
            published = None
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if tel.poll(100):
                    published = protocol.loads(tel.recv_multipart()[1])
        c = status["counters"]
        assert sorted(r["status"] for r in got) == ["ok"] * 8 + ["rejected"] * 4
        assert (c["tiles_received"], c["tiles_accepted"], c["duplicates"], c["tiles_rejected"]) == (18, 8, 6, 4)
        refused = c["tiles_rejected"] - c["rejected_by_reason"].get("inference_failed", 0)
        assert c["tiles_received"] == c["tiles_accepted"] + refused + c["duplicates"]
        assert c["results_sent"] == c["tiles_ok"] + c["tiles_rejected"] == 12
        assert sum(c["rejected_by_reason"].values()) == c["tiles_rejected"]
        assert c["in_flight"] == 0 and c["queue_depth"]["tiles_inside"] == 0
        assert status["delivery"]["results_acked"] == 8 and status["delivery"]["awaiting_ground"] == 0
        assert published is not None and set(published) == set(status) - {"v", "ok"}
        same = [k for k in c if not k.startswith("latency")]
        assert {k: published["counters"][k] for k in same} == {k: c[k] for k in same}
        # the stages Health pings are the declared ones (vectorise-N: one per worker)
        assert {re.sub(r"-\d+$", "", name) for name in status["health"]["stages"]} == set(interface.STAGES)
        # and every field of the nested channels is named in docs/protocol.md (delivery's were not)
        doc = (ROOT / "docs" / "protocol.md").read_text()
        health = status["health"]
        nested = [*status["delivery"], *status["device_recovery"], *(k for k in health if k != "stages"),
                  *health["stages"]["output"], *c["queue_depth"]]
        assert [name for name in nested if f"`{name}`" not in doc] == []
    finally:
        tel.close()
        src.close()


def test_a_sender_stuck_outside_the_send_itself_starves_the_watchdog(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str], tmp_path: Path
) -> None:
    """The output stage's heartbeat covered only the send of a result: a sender stuck after it (on a
    ground's ack, releasing the tile, telling its sender "done") looked idle, so Health fed the watchdog
    while no result left, and said nothing. It must be reported hung and the watchdog left unfed, and
    fed again once the sender goes on."""
    real = delivery._tell
    stuck, release = threading.Event(), threading.Event()

    def hangs_once(*args: object) -> None:
        if not stuck.is_set():
            stuck.set()
            release.wait(30)
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery, "_tell", hangs_once)
    watchdog = tmp_path / "watchdog"
    cfg = config.defaults()
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 0.5, "watchdog_file": str(watchdog)}
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
        try:
            ground = Ground(ipc_endpoints)
            src = zmq.Context.instance().socket(zmq.DEALER)
            src.setsockopt(zmq.LINGER, 0)
            src.connect(ipc_endpoints["tiles"])
            src.send_multipart(_tile(0).frames())
            ground.results(1, timeout_s=20)  # acked: the sender now hangs telling its sender "done"
            assert stuck.wait(10)
            time.sleep(1.0)  # twice the hang timeout
            fed = watchdog.stat().st_mtime_ns
            time.sleep(0.5)
            output = ControlClient(ipc_endpoints["control"]).status()["health"]["stages"]["output"]
            assert output["hung"] is True, output
            assert watchdog.stat().st_mtime_ns == fed, "the watchdog was fed while the sender was stuck"
            release.set()
            deadline = time.monotonic() + 10
            while watchdog.stat().st_mtime_ns == fed and time.monotonic() < deadline:
                time.sleep(0.05)
            assert watchdog.stat().st_mtime_ns > fed, "the watchdog was not fed again"
            src.close()
        finally:
            release.set()


def test_a_bug_met_on_a_tile_raises_the_internal_error_event(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """docs/protocol.md: a tile rejected with ``internal_error`` means "the runtime met a bug on this
    tile; it goes on serving and raises an `internal_error` event". A bug met in ingest was counted in
    internal_errors but said only as ``tile_rejected`` (WARNING_LO, the level of a sender's malformed
    header), so a ground that watches for internal_error (the level of every other bug) never heard it."""
    import runtime.server as server_module

    def broken(header: dict, crs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(server_module, "check_on_the_earth", broken)
    events = zmq.Context.instance().socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"event")
    events.connect(ipc_endpoints["telemetry"])
    try:
        with runtime_thread(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints), brightness_bundle):
            ground = Ground(ipc_endpoints)
            time.sleep(0.5)  # the subscriber reconnects to the telemetry socket bound after it connected
            src = zmq.Context.instance().socket(zmq.DEALER)
            src.setsockopt(zmq.LINGER, 0)
            src.connect(ipc_endpoints["tiles"])
            src.send_multipart(_tile(0).frames())
            [result] = ground.results(1, timeout_s=20)
            src.close()
            assert (result["status"], result["reason"]) == ("rejected", "internal_error")
            said, deadline = [], time.monotonic() + 2
            while time.monotonic() < deadline:
                if events.poll(50):
                    said.append(protocol.loads(events.recv_multipart()[1]))
            counters = ControlClient(ipc_endpoints["control"]).status()["counters"]
        bugs = [e for e in said if e["event"] == "internal_error"]
        assert len(bugs) == 1 and bugs[0]["tile_id"] == "s/0" and "a bug" in bugs[0]["detail"], said
        assert bugs[0]["severity"] == interface.EVENTS["internal_error"]
        assert counters["internal_errors"] == 1
    finally:
        events.close()
