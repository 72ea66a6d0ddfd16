"""The runtime a rig starts does not outlive it, and its death is said at once (review of 2026-12-05):
Ctrl-C while it started, or SIGTERM to ``python -m hil run``, left it running orphaned; a runtime
killed mid-run was reported 30 s later as a link that stopped acknowledging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hil
from hil import runtime_proc
from tests.conftest import make_brightness_bundle

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _wait_for(path: Path, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return int(path.read_text())


def test_an_interrupt_while_waiting_for_the_ready_line_stops_the_child(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pid"
    python = tmp_path / "python"  # a runtime that never gets ready
    python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    made: list[str] = []
    real_dir = runtime_proc.tempfile.TemporaryDirectory
    monkeypatch.setattr(runtime_proc.tempfile, "TemporaryDirectory",
                        lambda **kw: made.append((d := real_dir(**kw)).name) or d)
    threading.Thread(target=lambda: (_wait_for(pid_file), os.kill(os.getpid(), signal.SIGINT)), daemon=True).start()  # Ctrl-C
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runtime_proc.RuntimeProcess("CPU", tmp_path / "runtime.log", 60)
    assert time.monotonic() - t0 < 30
    pid = int(pid_file.read_text())
    try:
        assert not _alive(pid)
        assert made and not Path(made[0]).exists()  # its ipc sockets' folder is gone too
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigterm_to_the_rig_stops_the_runtime_it_started(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "b", size=128)
    pid_file = tmp_path / "pid"
    (tmp_path / "sitecustomize.py").write_text(  # the runtime child writes its pid and hangs before ready
        "import os, sys, time\n"
        "if 'serve' in sys.orig_argv:\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "PYTHONWARNINGS": "ignore"}
    rig = subprocess.Popen([sys.executable, "-m", "hil", "run", "--scene", "synthetic:size=256", "--model",
                            str(tmp_path / "b"), "--device", "CPU", "--report", str(tmp_path / "out"), "--quiet"],
                           cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    pid = None
    try:
        pid = _wait_for(pid_file, 60)
        rig.send_signal(signal.SIGTERM)
        _, err = rig.communicate(timeout=30)
        assert rig.returncode == 130 and "interrupted" in err and "Traceback" not in err
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        if rig.poll() is None:
            rig.kill()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_runtime_killed_mid_run_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_brightness_bundle(tmp_path / "b", size=128)
    started: list[runtime_proc.RuntimeProcess] = []
    real_init = runtime_proc.RuntimeProcess.__init__

    def init(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        started.append(self)
        threading.Timer(2.0, self.proc.kill).start()  # SIGKILL, mid-stream

    monkeypatch.setattr(runtime_proc.RuntimeProcess, "__init__", init)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"the runtime exited with code -9 during the run; see .*runtime\.log"):
        hil.run("synthetic:size=512", tmp_path / "b", tmp_path / "out", device="CPU", seed=3,
                timing=hil.rig.Timing("rate", rate_hz=2))
    assert time.monotonic() - t0 < 15  # not after the 30 s ack timeout
    assert started and started[0].proc.returncode == -9
