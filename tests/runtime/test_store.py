"""The bundle store under the conditions an adversarial test found: interrupted installs and a
read-only store (issue 13)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


from runtime.bundle import read_bundle
from runtime.store import BundleStore
from runtime.client import ControlClient
from tests.conftest import make_read_only

REPO = Path(__file__).resolve().parents[2]


def test_staging_folders_of_an_interrupted_install_are_removed(tmp_path: Path, brightness_bundle: Path) -> None:
    store = BundleStore(tmp_path)
    store.install(read_bundle(brightness_bundle))
    stale = tmp_path / ".incoming-abc123"
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"half a model")
    again = BundleStore(tmp_path)
    assert not stale.exists() and again.current_path() is not None and again.writable


def test_a_runtime_starts_and_serves_its_model_from_a_read_only_store(tmp_path: Path, brightness_bundle: Path) -> None:
    """It used to exit with a traceback; now it serves the model without installing it."""
    short = Path(tempfile.mkdtemp(prefix="ro-", dir="/tmp"))
    store, model = short / "store", short / "model"
    shutil.copytree(brightness_bundle, model)
    BundleStore(store)
    undo = make_read_only(store)
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    cmd = [sys.executable, "-m", "runtime", "serve", "--device", "CPU", "--model", str(model), "--store", str(store)]
    for name, endpoint in endpoints.items():
        cmd += [f"--{name}", endpoint]
    proc = None
    try:
        assert not BundleStore(store).writable
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=open(tmp_path / "log", "wb"))
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, (tmp_path / "log").read_text()[-3000:]
        assert json.loads(line)["event"] == "ready"
        status = ControlClient(endpoints["control"]).status()
        assert status["model"]["name"] == "brightness"
        assert list((store / "bundles").iterdir()) == []  # served, not installed
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        for cmd in undo:
            subprocess.run(cmd, capture_output=True)
        if not undo:
            for p in (store, store / "bundles"):
                os.chmod(p, 0o755)
        shutil.rmtree(short, ignore_errors=True)
