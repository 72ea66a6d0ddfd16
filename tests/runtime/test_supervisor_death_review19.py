"""A runtime under ``runtime supervise`` does not outlive its supervisor: one killed outright (SIGKILL,
the OOM killer) runs no clean-up, and its runtime served on unsupervised, holding the device that the
next supervisor's runtime must open (``runtime.supervisor.die_with_parent``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie no one has reaped yet counts: it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_runtime_exits_when_its_supervisor_is_killed(brightness_bundle: Path, tmp_path: Path) -> None:
    short = tempfile.mkdtemp(prefix="sd-", dir="/tmp")
    serve = ["--device", "CPU", "--model", str(brightness_bundle), "--store", str(tmp_path / "store")]
    for name in ("tiles", "results", "control", "telemetry", "acks"):
        serve += [f"--{name}", f"ipc://{short}/{name}"]
    with open(tmp_path / "supervisor.log", "wb") as stderr:
        sup = subprocess.Popen([sys.executable, "-m", "runtime", "supervise", "--", *serve],
                               stdout=subprocess.PIPE, stderr=stderr, cwd=REPO)
        runtime_pid = None
        try:
            assert json.loads(sup.stdout.readline())["event"] == "ready"  # type: ignore[union-attr]
            children = subprocess.run(["pgrep", "-P", str(sup.pid)], capture_output=True, text=True).stdout.split()
            assert len(children) == 1, children
            runtime_pid = int(children[0])
            sup.kill()
            sup.wait(10)
            deadline = time.monotonic() + 30
            while not _gone(runtime_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _gone(runtime_pid), "the runtime served on after its supervisor was killed"
        finally:
            if sup.poll() is None:
                sup.kill()
            if runtime_pid is not None and not _gone(runtime_pid):
                os.kill(runtime_pid, signal.SIGKILL)
