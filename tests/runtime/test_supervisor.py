"""``runtime supervise``: a runtime that stops answering is killed and started again by its
supervisor, and a sender that resends loses nothing across the restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.runtime.test_restart import resending_stream

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_wedged_runtime_is_restarted_by_its_supervisor_and_nothing_is_lost(
        brightness_bundle: Path, tmp_path: Path) -> None:
    short = tempfile.mkdtemp(prefix="sv-", dir="/tmp")
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    serve = ["--device", "CPU", "--model", str(brightness_bundle), "--store", str(tmp_path / "store")]
    for name, endpoint in endpoints.items():
        serve += [f"--{name}", endpoint]
    stderr = open(tmp_path / "supervisor.log", "wb")
    sup = subprocess.Popen([sys.executable, "-m", "runtime", "supervise", "--starve-s", "3", "--", *serve],
                           stdout=subprocess.PIPE, stderr=stderr, cwd=REPO)
    try:
        first = json.loads(sup.stdout.readline())  # type: ignore[union-attr]
        assert first["event"] == "ready"
        tiles, collector, streamer, stream = resending_stream(endpoints, 200)
        assert collector.wait_for(30, 30)
        runtime_pid = int(subprocess.run(["pgrep", "-P", str(sup.pid)], capture_output=True, text=True).stdout.split()[0])
        os.kill(runtime_pid, signal.SIGSTOP)  # wedged: every stage and the watchdog stop
        second = json.loads(sup.stdout.readline())  # type: ignore[union-attr]  # the new runtime's ready line
        assert second["event"] == "ready"
        stream.join(120)
        assert not stream.is_alive(), "the stream did not complete"
        assert collector.wait_for(200, 30)
        assert {r["tile_id"] for _, r, _ in collector.results} == {t.tile_id for t in tiles}
        assert all(r["status"] == "ok" for _, r, _ in collector.results)
        stderr.flush()
        events = [json.loads(line) for line in (tmp_path / "supervisor.log").read_text().splitlines()
                  if line.startswith("{\"event\"")]
        restarted = [e for e in events if e["event"] == "runtime_restarted"]
        assert len(restarted) == 1 and "watchdog starved" in restarted[0]["reason"], events
        collector.close()
        streamer.close()
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(40)
        except subprocess.TimeoutExpired:
            sup.kill()
        stderr.close()
