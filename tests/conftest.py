"""Shared fixtures: a small real IR bundle and a real runtime serving on ipc sockets."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
import openvino as ov
import pytest
import zmq

from hil.runtime_proc import RuntimeProcess
from runtime import config
from runtime.client import ControlClient
from runtime.bundle import Bundle, write_bundle
from runtime.server import Runtime, Settings


def write_scene_with_truth(path: Path, pixels: np.ndarray, truth: np.ndarray, crs: str,
                           transform: Affine) -> tuple[Path, Path]:
    """``path``/scene.tif (uint8 bands, H, W) and ``path``/truth.tif (vessel mask) on one grid."""
    import rasterio

    profile = dict(driver="GTiff", height=pixels.shape[1], width=pixels.shape[2], count=pixels.shape[0],
                   dtype="uint8", crs=crs, transform=transform)
    with rasterio.open(path / "scene.tif", "w", **profile) as dst:
        dst.write(pixels)
    with rasterio.open(path / "truth.tif", "w", **{**profile, "count": 1}) as dst:
        dst.write(truth, 1)
    return path / "scene.tif", path / "truth.tif"


def make_brightness_bundle(out: Path, size: int = 64, bands: int = 3, name: str = "brightness",
                           threshold: float = 0.5) -> Bundle:
    """A real FP16 IR whose "vessels" are bright pixels: sigmoid(10 * (mean band / 255 - 0.5)).

    Its output is known in closed form, so tests can say exactly which polygons must come back.
    """
    from openvino import opset8 as ops

    x = ops.parameter([1, bands, size, size], np.float32, name="input")
    w = np.full((1, bands, 1, 1), 10.0 / bands, dtype=np.float32)
    conv = ops.convolution(x, ops.constant(w), [1, 1], [0, 0], [0, 0], [1, 1])
    y = ops.sigmoid(ops.add(conv, ops.constant(np.full((1, 1, 1, 1), -5.0, dtype=np.float32))))
    model = ov.Model([y], [x], name)
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(model, Path(tmp) / "model.xml", compress_to_fp16=True)
        xml, bin_ = (Path(tmp) / "model.xml").read_bytes(), (Path(tmp) / "model.bin").read_bytes()
    manifest = {
        "name": name,
        "input": {"shape": [1, bands, size, size], "layout": "NCHW", "bands": ["b"] * bands, "dtype": "float32",
                  "normalization": {"where": "host", "mean": [0.0] * bands, "std": [255.0] * bands}},
        "output": {"name": "vessel_probability", "shape": [1, 1, size, size], "threshold": threshold,
                   "activation": "sigmoid", "meaning": "probability that the pixel is a vessel"},
        "numerics": {"weights": "fp16"},
        "parameters": bands + 1,
    }
    return write_bundle(out, xml, bin_, manifest)


@pytest.fixture(scope="session")
def brightness_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "brightness"
    make_brightness_bundle(out)
    return out


@pytest.fixture()
def ipc_endpoints(tmp_path: Path) -> dict[str, str]:
    # ipc paths are limited to ~100 characters; pytest's tmp_path can be longer.
    short = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    return {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}


#: Whether this host shows each thread's context switches (Linux's /proc): the tests that count
#: wake-ups are skipped elsewhere.
COUNTS_WAKEUPS = Path("/proc/self/task").is_dir()


def thread_wakeups(thread: threading.Thread) -> int:
    """How many times ``thread`` has gone to sleep and been woken (its voluntary context switches)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("voluntary_ctxt_switches")))


def wait_until_dropped(sock: zmq.Socket, timeout_s: float = 10.0) -> bool:
    """Wait until ``sock`` can send nothing: its only connection was dropped (a refused CURVE
    handshake drops it about 0.1-0.3 s after connecting). False if it still could at the deadline."""
    deadline = time.monotonic() + timeout_s
    while sock.poll(0, zmq.POLLOUT) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not sock.poll(0, zmq.POLLOUT)


@contextlib.contextmanager
def event_subscriber(telemetry: str) -> Iterator[zmq.Socket]:
    """A SUB socket on a runtime's ``telemetry`` endpoint, subscribed to its events; closed after."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"event")
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(telemetry)
    try:
        yield sock
    finally:
        sock.close()


def drained_events(sock: zmq.Socket, name: str, quiet_ms: int = 500) -> list[dict[str, Any]]:
    """The events called ``name`` that ``sock`` (:func:`event_subscriber`) receives until it has been
    quiet for ``quiet_ms``."""
    from runtime import protocol

    out = []
    while sock.poll(quiet_ms):
        event = protocol.loads(sock.recv_multipart()[1])
        if event["event"] == name:
            out.append(event)
    return out


@contextlib.contextmanager
def serving_process(device: str, bundle: Path, log: Path) -> Iterator[RuntimeProcess]:
    """A runtime process (``python -m runtime serve``, default configuration) on ``device`` with
    ``bundle`` uplinked, for tests that must hold against the real process rather than a thread."""
    proc = RuntimeProcess(device, log, startup_timeout_s=60)
    try:
        ControlClient(proc.endpoints["control"]).load_model(bundle)
        yield proc
    finally:
        proc.close()


@pytest.fixture()
def runtime_proc(tmp_path: Path, brightness_bundle: Path) -> Iterator[RuntimeProcess]:
    """:func:`serving_process` on the CPU with the brightness model."""
    with serving_process("CPU", brightness_bundle, tmp_path / "runtime.log") as proc:
        yield proc


@contextlib.contextmanager
def runtime_thread(settings: Settings, model: Path | None = None) -> Iterator[Runtime]:
    """A real runtime with ``settings``, serving ``model``, in a background thread; stopped (and
    checked to have stopped) on exit."""
    runtime = Runtime(settings, model=model)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "runtime did not stop"


@pytest.fixture()
def running_runtime(brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> Iterator[Runtime]:
    """A real runtime on ipc sockets, serving the brightness model, in a background thread."""
    with runtime_thread(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints),
                        brightness_bundle) as runtime:
        yield runtime


def make_read_only(path: Path) -> list[list[str]]:
    """Make the folder ``path`` (and its ``bundles`` if there is one) read-only for real; returns the
    commands that undo it. As root, permission bits do not stop writes, so a read-only bind mount is
    used (skip where mounting is not allowed)."""
    if os.geteuid() != 0:
        for p in (path / "bundles", path):
            if p.exists():
                os.chmod(p, 0o555)
        return []
    for cmd in (["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,ro,bind", str(path)]):
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(path)], capture_output=True)
            pytest.skip("running as root without permission to mount: cannot make a store read-only here")
    return [["umount", str(path)]]
