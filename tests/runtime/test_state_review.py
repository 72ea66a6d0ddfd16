"""The payload's state and crash paths, found by an adversarial review (each test failed before its fix).

1. An install published ``current`` (and moved the bundle into ``bundles/``) by renames that were
   never fsynced in their folders before the ground was told "ok".
2. A model that passed acceptance but took down every runtime serving it was restarted into for ever.
3. The supervisor's restart back-off never reset: one crash a day left it at ``max_backoff_s``.
4. A shutdown with a request hung on the serving device never returned.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from flightsim.streamer import Streamer
from runtime.bundle import Bundle, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.device import OpenVINOAdapter
from runtime.server import Runtime
from runtime.store import BundleStore
from runtime.supervisor import Supervisor
from tests.runtime.test_device_loss_review import _settings, first_device_as
from tests.runtime.test_lost_device_endurance import assert_stops_within
from tests.runtime.test_server import _tile


def _variant(base: Path, out: Path, name: str) -> Bundle:
    bundle = read_bundle(base)
    manifest = rewritable_manifest(bundle)
    manifest["name"] = name
    return rewrite_bundle(bundle, out / name, manifest)


# -- 1. install: every rename is durable before install() returns (the ground's "ok") ----------

def _record_syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Log ("fsync", path) and ("replace", destination) in order (fsync itself still runs)."""
    log: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace_(src: Any, dst: Any, **kwargs: Any) -> None:
        real_replace(src, dst, **kwargs)
        log.append(("replace", str(Path(dst).parent.resolve() / Path(dst).name)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace_)
    return log


@pytest.mark.parametrize("installs", [1, 2])
def test_an_install_is_durable_before_it_returns(
        tmp_path: Path, brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch, installs: int) -> None:
    """Each rename in the store's root and in bundles/ (the bundle moved in, the links swapped) is
    followed by an fsync of that folder before install() returns, and the bundle is moved into
    bundles/ durably before the ``current`` link that names it is published."""
    store = BundleStore(tmp_path / "store")
    root, bundles = str(store.root), str(store.root / "bundles")
    for i in range(installs - 1):
        store.install(_variant(brightness_bundle, tmp_path, f"old{i}"))
    log = _record_syncs(monkeypatch)
    new = _variant(brightness_bundle, tmp_path, "new")
    target = store.install(new)

    def synced_after(index: int, folder: str) -> bool:
        return ("fsync", folder) in log[index + 1:]

    folder_renames = [(i, dst) for i, (op, dst) in enumerate(log)
                      if op == "replace" and str(Path(dst).parent) in (root, bundles)]
    assert folder_renames, log
    for i, dst in folder_renames:
        assert synced_after(i, str(Path(dst).parent)), f"rename to {dst} never fsynced in its folder: {log}"
    moved_in = log.index(("replace", str(target)))
    published = log.index(("replace", f"{root}/current"))
    assert ("fsync", bundles) in log[moved_in + 1:published], \
        f"current published before the bundle's move into bundles/ was durable: {log}"


# -- 3. supervisor back-off resets after a long healthy run ----------------------------------

STAND_IN = r"""
import json, os, sys, time
runs = int(open(sys.argv[1]).read() or 0) if os.path.exists(sys.argv[1]) else 0
open(sys.argv[1], "w").write(str(runs + 1))
print(json.dumps({"tiles": "stand-in"}), flush=True)
wd = sys.argv[sys.argv.index("--watchdog-file") + 1]
# crash at once for the first four runs, then serve healthily (watchdog fed) for 3 s and crash
end = time.monotonic() + (0.1 if runs < 4 else 3.0)
while time.monotonic() < end:
    open(wd, "a").close(); os.utime(wd); time.sleep(0.05)
sys.exit(3)
"""


def test_the_restart_back_off_resets_after_a_long_healthy_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four quick crashes take the back-off to its cap; a runtime that then runs healthily for far
    longer than the cap (3 s against 0.4 s) before it crashes is restarted after the first back-off,
    as a crash a day would be, not after the cap for ever."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    supervisor = Supervisor(["--store", str(tmp_path / "store")], starve_s=2, backoff_s=0.05,
                            max_backoff_s=0.4, max_restarts=5, start_timeout_s=20)
    supervisor.cmd = [sys.executable, str(script), str(tmp_path / "runs"), "--watchdog-file",
                      str(supervisor.watchdog)]
    pauses: list[float] = []
    real_pause = supervisor._pause
    monkeypatch.setattr(supervisor, "_pause", lambda s: (pauses.append(s), real_pause(s))[1])
    assert supervisor.run() == 1  # gave up after max_restarts
    assert pauses[:4] == [0.05, 0.1, 0.2, 0.4], pauses
    assert pauses[4] == 0.05, f"the back-off did not reset after a 3 s healthy run: {pauses}"


# -- 4. a request hung on the serving device ---------------------------------------------------

class HangsForEver(OpenVINOAdapter):
    """A device whose requests never complete and never fail (a wedged VPU)."""

    release = threading.Event()

    def _result(self, request: Any) -> np.ndarray:
        HangsForEver.release.wait()
        return super()._result(request)


def test_a_shutdown_does_not_wait_for_ever_for_the_serving_device_that_hangs(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for a replaced device (test_lost_device_endurance.py): a shutdown waits twice
    [health] hang_timeout_s for the serving device's hung requests, then leaves their tiles to the
    senders' resends, rather than never returning."""
    first_device_as(HangsForEver, monkeypatch)
    HangsForEver.release.clear()
    settings = _settings()
    settings = replace(settings, health=MappingProxyType({**settings.health, "hang_timeout_s": 1.0}))
    runtime = Runtime(settings, model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    streamer = Streamer(runtime.endpoints["tiles"], window=4)
    try:
        log = streamer.stream([_tile(i) for i in range(2)])
        assert [ack["status"] for ack in log.acks.values()] == ["accepted"] * 2
        time.sleep(1.5)
        assert runtime.status()["health"]["stages"]["inference"]["stuck_s"] >= 1.0  # Health reports it hung
        assert_stops_within(runtime, thread, 15, "the shutdown waited for ever for the serving device's hung request")
    finally:
        HangsForEver.release.set()
        streamer.close()
        runtime.stop()
        thread.join(timeout=30)


# -- 2. an installed model that passes acceptance, then crashes every runtime that serves it ------

CRASHES_ON_TILES = r"""
import os, runpy, sys
import runtime.device as device

opened = device.OpenVINOAdapter.__init__

def init(self, bundle, *args, **kwargs):
    opened(self, bundle, *args, **kwargs)
    if bundle.name == "crashes":  # passes acceptance (synchronous infer), dies on the first real tile
        self.start_async = lambda batch, userdata: os._exit(70)

device.OpenVINOAdapter.__init__ = init
sys.argv = ["runtime", *sys.argv[1:]]
runpy.run_module("runtime", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_an_uplinked_model_that_crashes_every_runtime_is_rolled_back(
        tmp_path: Path, brightness_bundle: Path) -> None:
    """A model that passes its acceptance test but kills the runtime on every real tile (a plugin
    crash, an out-of-memory on real data): after a few restarts in a row into it, the supervisor
    serves the previous (good) model again, rather than restarting into the same crash for ever."""
    import tempfile

    import zmq

    from runtime.client import ControlClient
    from tests.runtime.test_server import _tile

    _variant(brightness_bundle, tmp_path, "good")
    crashes = _variant(brightness_bundle, tmp_path, "crashes")
    short = tempfile.mkdtemp(prefix="cr-", dir="/tmp")
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    serve = ["--device", "CPU", "--model", str(tmp_path / "good"), "--store", str(tmp_path / "store")]
    for name, endpoint in endpoints.items():
        serve += [f"--{name}", endpoint]
    supervisor = Supervisor(serve, starve_s=60, backoff_s=0.1, max_backoff_s=0.2, max_restarts=6,
                            start_timeout_s=120)
    wrapper = tmp_path / "crashes_on_tiles.py"
    wrapper.write_text(CRASHES_ON_TILES)
    supervisor.cmd = [sys.executable, str(wrapper), *supervisor.cmd[3:]]  # "-m runtime" -> the wrapper
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(supervisor.run()), daemon=True)
    thread.start()
    ctx = zmq.Context()
    models: list[str] = []
    try:
        def serving() -> str:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                client = ControlClient(endpoints["control"], timeout_s=2, context=ctx)
                try:
                    return client.status()["model"]["name"]
                except Exception:
                    time.sleep(0.2)
                finally:
                    client.close()
            raise AssertionError("no runtime answered in 120 s")

        assert serving() == "good"
        client = ControlClient(endpoints["control"], timeout_s=60, context=ctx)
        assert client.load_model(crashes)["ok"]  # installed as current: "ok" to the ground
        client.close()
        for _ in range(5):
            models.append(serving())
            if models[-1] == "good":
                break
            tiles = ctx.socket(zmq.DEALER)
            tiles.setsockopt(zmq.LINGER, 0)
            tiles.connect(endpoints["tiles"])
            tiles.send_multipart(_tile(len(models)).frames())
            time.sleep(1.0)  # the runtime dies on it; the supervisor restarts one
            tiles.close()
    finally:
        supervisor.stop()
        thread.join(60)
        ctx.term()
    assert models[-1] == "good", (f"served after each crash: {models}; the store's current is still "
                                  f"{read_bundle(tmp_path / 'store' / 'current').name}")


def _supervised_store(tmp_path: Path, brightness_bundle: Path) -> tuple[BundleStore, Supervisor]:
    """A store whose previous model is "good" and whose current is "uplinked", and a supervisor
    of it whose runtime got ready (the ready ones are those judged)."""
    store = BundleStore(tmp_path / "store")
    store.install(_variant(brightness_bundle, tmp_path, "good"))
    store.install(_variant(brightness_bundle, tmp_path, "uplinked"))
    supervisor = Supervisor(["--store", str(store.root)], starve_s=2, backoff_s=0.05, max_backoff_s=0.1,
                            max_restarts=5, start_timeout_s=5)
    supervisor.start_failure = None
    return store, supervisor


def test_a_model_uplinked_into_a_runtime_that_ran_for_hours_is_not_proven_by_the_runtime_s_age(
        tmp_path: Path, brightness_bundle: Path) -> None:
    """The runtime that took the uplink had served for an hour; the model crashed it at once, and
    each restart after. The hour is the runtime's, not the model's: the model is rolled back after
    ROLL_BACK_AFTER crashes all the same."""
    store, supervisor = _supervised_store(tmp_path, brightness_bundle)
    supervisor._started = time.monotonic() - 3600  # the runtime that took the uplink
    supervisor._judge_current()
    for _ in range(2):  # the restarts, each taken down at once
        supervisor._started = time.monotonic()
        supervisor._judge_current()
    assert read_bundle(store.root / "current").name == "good"


def test_a_model_that_served_long_is_not_rolled_back_by_later_crashes(tmp_path: Path,
                                                                     brightness_bundle: Path) -> None:
    """A model current for an hour, its runtime up as long, has proven itself: crashes after that
    (a device going bad, say) restart it, and never roll back the ground's uplink."""
    store, supervisor = _supervised_store(tmp_path, brightness_bundle)
    an_hour_ago = time.time() - 3600
    os.utime(store.root / "current", (an_hour_ago, an_hour_ago), follow_symlinks=False)
    supervisor._started = time.monotonic() - 3600
    supervisor._judge_current()
    for _ in range(4):
        supervisor._started = time.monotonic()
        supervisor._judge_current()
    assert read_bundle(store.root / "current").name == "uplinked"
