"""Worker processes end with the search that started them, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _workers_of(pid: int) -> list[int]:
    """The pool's spawned workers among ``pid``'s children (Linux /proc)."""
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except FileNotFoundError:
            pass
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_of_a_search_killed_alone_end_with_it(tmp_path: Path, tiny_config_path: Path) -> None:
    """A search killed by itself (SIGKILL: the OOM killer, `kill -9 PID`) left its pool's workers
    running: reparented to init, they trained every queued candidate into OUT/candidates, without
    the folder's lock (which went with the search), beside a resumed search, then idled forever."""
    out = tmp_path / "killed"
    config = tmp_path / "two-workers.toml"
    config.write_text(tiny_config_path.read_text().replace("generations = 2", "generations = 1")
                      + "\n[run]\nworkers = 2\n")
    cmd = [sys.executable, "-m", "search", "run", "--config", str(config), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 2:
            assert proc.poll() is None, "the search ended before its workers started"
            workers = _workers_of(proc.pid)
            time.sleep(0.1)
        assert len(workers) == 2, "no two workers"
        time.sleep(1.0)  # inside their first candidates
        os.kill(proc.pid, signal.SIGKILL)  # the search alone, not its process group
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "workers outlived the search"
    finally:
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
