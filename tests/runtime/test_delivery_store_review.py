"""Delivery and store review (2026-12-05; each test failed on the code before): the age of the oldest
result awaiting the ground counts from its first send, not its last resend; an ack that is not a
list of three ids counts in ``bad_acks``; and a read-only store folder with nothing in it yet serves
``--model`` unpersisted rather than exiting on EROFS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

from runtime.client import ControlClient
from tests.conftest import make_read_only
from runtime.server import Runtime
from runtime.store import BundleStore

REPO = Path(__file__).resolve().parents[2]


def test_the_age_of_the_oldest_result_awaiting_the_ground_counts_from_its_first_send(monkeypatch) -> None:
    """``oldest_s`` was measured from the last resend: however long the ground had been away, it
    never passed ``ground_ack_timeout_s``, so telemetry could not show a ground gone for an hour."""
    import runtime.delivery as delivery

    now = [100.0]
    monkeypatch.setattr(delivery.time, "monotonic", lambda: now[0])
    ledger = delivery.AwaitingGround(timeout_s=5.0)
    key = ("s", "s/0", "crc32:0")
    assert ledger.sent(key, [b"r"], b"id", b"done")
    for t in range(6, 3600, 6):  # resent every 6 s for an hour, never acknowledged
        now[0] = 100.0 + t
        for due, _ in ledger.due():
            ledger.resent(due)
    now[0] = 3700.0
    report = ledger.report()
    assert report["awaiting_ground"] == 1 and report["oldest_s"] == 3600.0, report


@pytest.mark.parametrize("ack", ['"abc"', '{"a": 1, "b": 2, "c": 3}'])
def test_an_ack_that_is_not_a_list_of_three_ids_counts_as_bad(running_runtime: Runtime, ack: str) -> None:
    """tuple() of a 3-character string, or of an object with 3 keys, made a key of 3 strings: such an
    ack was taken for an unknown tile's, ignored, and not counted in ``bad_acks``."""
    acks = zmq.Context.instance().socket(zmq.PUSH)
    acks.setsockopt(zmq.LINGER, 0)
    acks.connect(running_runtime.endpoints["acks"])
    try:
        acks.send(f'{{"v": 1, "ack": {ack}}}'.encode())
        client = ControlClient(running_runtime.endpoints["control"])
        deadline = time.monotonic() + 5
        while True:
            delivery = client.status()["delivery"]
            if delivery.get("bad_acks") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert delivery["bad_acks"] == 1, delivery
    finally:
        acks.close()


def test_a_read_only_store_never_written_to_serves_the_model_given(tmp_path: Path, brightness_bundle: Path) -> None:
    """An empty read-only store folder (no ``bundles`` in it yet) was "error: [Errno 30] Read-only
    file system", exit 1, where a read-only store with bundles serves ``--model`` unpersisted."""
    short = Path(tempfile.mkdtemp(prefix="roe-", dir="/tmp"))
    store = short / "store"
    store.mkdir()
    undo = make_read_only(store)
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    cmd = [sys.executable, "-m", "runtime", "serve", "--device", "CPU", "--model", str(brightness_bundle),
           "--store", str(store)]
    for name, endpoint in endpoints.items():
        cmd += [f"--{name}", endpoint]
    proc = None
    try:
        opened = BundleStore(store)
        assert not opened.writable and not opened.has_current()
        with pytest.raises(ValueError, match="no previous bundle"):
            opened.roll_back()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=open(tmp_path / "log", "wb"))
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, (tmp_path / "log").read_text()[-3000:]
        assert json.loads(line)["event"] == "ready"
        assert ControlClient(endpoints["control"]).status()["model"]["name"] == "brightness"
        assert list(store.iterdir()) == []  # served, not installed
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        for undo_cmd in undo:
            subprocess.run(undo_cmd, capture_output=True)
        if not undo:
            os.chmod(store, 0o755)
        shutil.rmtree(short, ignore_errors=True)
