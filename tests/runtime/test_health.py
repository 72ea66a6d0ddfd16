"""The Health component: a stage made to hang is detected and restarted, and the stream completes."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from affine import Affine

import runtime.results as results_module
from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import config, protocol
from runtime.client import ControlClient
from runtime.server import Runtime, Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground


def _tiles(n: int) -> list[Tile]:
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    pixels[:, 10:20, 5:45] = 255
    t = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)
    return [Tile("s", f"s/{i}", i, pixels, t, "EPSG:32631", (0, 0, 64, 64)) for i in range(n)]


def test_a_hung_vectorise_stage_is_restarted_and_nothing_is_lost(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str], tmp_path: Path
) -> None:
    real = results_module.vectorize
    hang = threading.Event()
    release = threading.Event()
    stuck: list[threading.Thread] = []

    def hangs_once(*args: object, **kwargs: object) -> list:
        if not hang.is_set():
            hang.set()
            stuck.append(threading.current_thread())
            release.wait(30)  # stuck, as a stage with a deadlock or a runaway geometry would be
        return real(*args, **kwargs)

    monkeypatch.setattr(results_module, "vectorize", hangs_once)
    cfg = config.defaults()
    watchdog = tmp_path / "watchdog"
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 0.5, "watchdog_file": str(watchdog)}
    runtime = Runtime(Settings.from_config(cfg, device="CPU", **ipc_endpoints), model=brightness_bundle)
    events = zmq.Context.instance().socket(zmq.SUB)
    events.setsockopt(zmq.SUBSCRIBE, b"event")
    events.connect(ipc_endpoints["telemetry"])
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        ground = Ground(ipc_endpoints)
        Streamer(ipc_endpoints["tiles"]).stream(_tiles(6))
        got = ground.results(6, timeout_s=10)
        assert sorted(r["tile_id"] for r in got) == [f"s/{i}" for i in range(6)]
        assert all(r["status"] == "ok" for r in got)
        health = ControlClient(ipc_endpoints["control"]).status()["health"]
        assert health["stages"]["vectorise-0"]["restarts"] == 1
        names = []
        deadline = time.monotonic() + 5
        while "stage_restarted" not in names and time.monotonic() < deadline:
            if events.poll(200):
                names.append(protocol.loads(events.recv_multipart()[1])["event"])
        assert "stage_hung" in names and "stage_restarted" in names
        # The stuck worker wakes up later: its late result must not reach the ground twice. Once
        # its thread has ended, anything it sent is queued ahead of a tile streamed after it, so
        # the next result to arrive must be that tile's.
        release.set()
        stuck[0].join(30)
        assert not stuck[0].is_alive(), "the stuck worker never finished"
        Streamer(ipc_endpoints["tiles"]).stream([dataclasses.replace(_tiles(1)[0], tile_id="s/after", seq=6)])
        assert ground.results(1, timeout_s=30)[0]["tile_id"] == "s/after"
        # All stages answer again, so the watchdog is fed (it is touched every 0.1 s).
        fed = watchdog.stat().st_mtime_ns
        deadline = time.monotonic() + 30
        while watchdog.stat().st_mtime_ns == fed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watchdog.stat().st_mtime_ns > fed, "the watchdog was not fed again"
    finally:
        release.set()
        runtime.stop()
        thread.join(30)
        events.close()


def test_a_tile_that_gets_two_workers_stuck_is_rejected_not_handed_on_forever(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    real = results_module.vectorize
    release = threading.Event()
    stuck: list[threading.Thread] = []

    tile_of: dict[int | None, str] = {}  # worker thread -> the tile it is post-processing
    real_post = Runtime._post_process

    def post_process(self: Runtime, output: object, job: object, t: float) -> tuple[list[bytes], bool]:
        tile_of[threading.current_thread().ident] = job.header["tile_id"]  # type: ignore[attr-defined]
        return real_post(self, output, job, t)  # type: ignore[arg-type]

    def hangs_on_tile_3(*args: object, **kwargs: object) -> list:
        if tile_of.get(threading.current_thread().ident) == "s/3":
            stuck.append(threading.current_thread())
            release.wait(30)  # every worker that takes tile s/3 hangs on it
        return real(*args, **kwargs)

    monkeypatch.setattr(results_module, "vectorize", hangs_on_tile_3)
    monkeypatch.setattr(Runtime, "_post_process", post_process)
    cfg = config.defaults()
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 0.5, "watchdog_file": ""}
    runtime = Runtime(Settings.from_config(cfg, device="CPU", **ipc_endpoints), model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        ground = Ground(ipc_endpoints)
        Streamer(ipc_endpoints["tiles"]).stream(_tiles(6))
        got = {r["tile_id"]: r for r in ground.results(6, timeout_s=20)}
        assert sorted(got) == [f"s/{i}" for i in range(6)]
        assert got["s/3"]["status"] == "rejected" and got["s/3"]["reason"] == protocol.Reason.INFERENCE_FAILED.value
        assert "stuck" in got["s/3"]["detail"]
        assert all(r["status"] == "ok" for tile_id, r in got.items() if tile_id != "s/3")
        assert len(stuck) == 2, "tile s/3 was handed to a fresh worker once, then given up"
        health = ControlClient(ipc_endpoints["control"]).status()["health"]
        assert health["stages"]["vectorise-0"]["restarts"] == 2
    finally:
        release.set()
        runtime.stop()
        thread.join(30)


@pytest.mark.parametrize("load_timeout_s, fed", [(10.0, True), (0.3, False)])
def test_an_uplink_s_model_load_feeds_the_watchdog_up_to_its_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str],
    load_timeout_s: float, fed: bool
) -> None:
    """A model load runs on the main loop (a compile on a stick can take many seconds): ingest is not
    hung, and the watchdog stays fed, for [health] load_timeout_s of it (a supervisor starved the
    runtime and killed it mid-uplink); a load that takes longer is a hang as any other."""
    from runtime.bundle import read_bundle

    real_load = Runtime._load
    uplinked = threading.Event()

    def slow_load(self: Runtime, bundle: Any, *args: Any, **kwargs: Any) -> Any:
        if uplinked.is_set():
            time.sleep(2.0)  # a compile on the device
        return real_load(self, bundle, *args, **kwargs)

    monkeypatch.setattr(Runtime, "_load", slow_load)
    cfg = config.defaults()
    watchdog = tmp_path / "watchdog"
    cfg["health"] = {**cfg["health"], "period_s": 0.1, "hang_timeout_s": 0.5, "watchdog_file": str(watchdog),
                     "load_timeout_s": load_timeout_s}
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
        uplinked.set()
        bundle = read_bundle(brightness_bundle)
        uplink = threading.Thread(target=lambda: ControlClient(ipc_endpoints["control"], timeout_s=30).load_model(bundle))
        uplink.start()
        time.sleep(1.6)  # well inside the load, past three hang timeouts
        fed_s_ago = time.time() - watchdog.stat().st_mtime
        uplink.join(30)
    assert (fed_s_ago < 0.5) is fed, f"the watchdog was last fed {fed_s_ago:.2f} s ago"


def test_an_idle_runtime_feeds_the_watchdog_when_the_hang_timeout_is_below_the_period(
    ipc_endpoints: dict[str, str]
) -> None:
    """An idle main loop slept a whole health (or telemetry) period in its poll, and its ingest
    heartbeat aged meanwhile: with a hang timeout shorter than the period (check every 1 s, a stage
    stuck 0.8 s is hung) every check found ingest "stuck" for about 1 s, so an idle, healthy
    runtime was reported hung and never fed its watchdog (a supervisor then killed it)."""
    cfg = config.defaults()
    cfg["health"] = {**cfg["health"], "period_s": 1.0, "hang_timeout_s": 0.8}
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints)) as runtime:
        time.sleep(4.5)  # four health checks, with no tile and no command
        report = runtime.health.report()
    assert report["watchdog_fed_at"] is not None, f"an idle runtime never fed its watchdog: {report}"
    assert not report["stages"]["ingest"]["hung"], report
