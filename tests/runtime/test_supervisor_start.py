"""``runtime supervise`` while a runtime starts: the wait for its ready line is bounded by
``[supervise] start_timeout_s`` and by stop(), and a restarted runtime that exits or stays silent
before it is ready is one more failed restart (killed, reaped, backed off, counted against
``max_restarts``), not the end of the supervisor.

The runtimes here are stand-in processes (``Supervisor.cmd`` replaced), so each test takes about a
second; each runs the supervisor in a thread joined with a bound, so a regression fails, not hangs.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runtime import config
from runtime.supervisor import Supervisor, main

READY = '{"event": "ready", "endpoints": {}}'


def _stand_in(tmp_path: Path, first: str, later: str) -> list[str]:
    """A command whose first run does ``first`` and every later run ``later`` (Python statements)."""
    flag = tmp_path / "started-once"
    code = (f"import os, sys, time\nif not os.path.exists({str(flag)!r}):\n"
            f"    open({str(flag)!r}, 'w').close()\n    {first}\nelse:\n    {later}\n")
    return [sys.executable, "-c", code]


SAY_READY_THEN_CRASH = f"print({READY!r}, flush=True); time.sleep(0.3); sys.exit(1)"
SAY_READY_THEN_SHUT_DOWN = f"print({READY!r}, flush=True); time.sleep(0.3); sys.exit(0)"
WEDGE = "time.sleep(60)"              # e.g. a device open that never returns: no ready line
EXIT_EARLY = "sys.exit(3)"            # e.g. the device still held by the runtime just killed


class Running:
    """``sup.run()`` in a thread: its result or exception, and every runtime pid it started."""

    def __init__(self, sup: Supervisor, later_timeout_s: float | None = None):
        """``later_timeout_s``: the restarts' start_timeout_s, the first start keeping a generous one
        (a Python process starting on a busy 2-core host may take longer than a restart is given)."""
        self.sup, self.result, self.error, self.pids = sup, None, None, []
        self.later_timeout_s = later_timeout_s
        sup.start = self._recording(sup.start)  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()
        self.thread.start()

    def _recording(self, start: Any) -> Any:
        def recorded() -> Any:
            ready = start()
            self.pids.append(self.sup.proc.pid)  # type: ignore[union-attr]
            if self.later_timeout_s is not None:
                self.sup.start_timeout_s = self.later_timeout_s
            return ready
        return recorded

    def _run(self) -> None:
        try:
            self.result = self.sup.run()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def join(self, seconds: float) -> float:
        self.thread.join(seconds)
        elapsed = time.monotonic() - self.started
        if self.thread.is_alive():
            self.sup.stop()
            if self.sup.proc is not None and self.sup.proc.poll() is None:
                self.sup.proc.kill()
            self.thread.join(10)
            pytest.fail(f"the supervisor was still running after {seconds} s")
        return elapsed


def _events(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith('{"event"')]


def _reaped(pid: int) -> bool:
    """True once ``pid`` is gone and waited for (a zombie still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _supervisor(cmd: list[str], start_timeout_s: float, **kw: Any) -> Supervisor:
    sup = Supervisor([], **{"starve_s": 30.0, "backoff_s": 0.05, "max_backoff_s": 0.2, **kw})
    sup.cmd = cmd
    sup.start_timeout_s = start_timeout_s  # set, not passed, so that the supervisor before the fix could run these
    return sup


@pytest.mark.timeout(60)
def test_a_restart_that_never_says_ready_is_killed_and_counted_against_max_restarts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sup = _supervisor(_stand_in(tmp_path, SAY_READY_THEN_CRASH, WEDGE), start_timeout_s=30.0, max_restarts=2)
    running = Running(sup, later_timeout_s=0.5)
    running.join(30)
    assert running.error is None, running.error
    assert running.result == 1 and sup.restarts == 2
    events = _events(capsys.readouterr().err)
    restarted = [e for e in events if e["event"] == "runtime_restarted"]
    assert [e["restarts"] for e in restarted] == [1, 2], events
    assert restarted[0]["reason"] == "exited with code 1"
    assert all(e["ready"] is False and "not ready within 0.5 s" in e["failure"] for e in restarted), events
    assert "not ready within 0.5 s" in restarted[1]["reason"]  # the failed start is the next restart's reason
    gave_up = [e for e in events if e["event"] == "supervisor_gave_up"]
    assert len(gave_up) == 1 and "not ready within 0.5 s" in gave_up[0]["reason"], events
    assert len(running.pids) == 3 and all(_reaped(pid) for pid in running.pids), running.pids


@pytest.mark.timeout(60)
def test_a_restart_that_exits_before_ready_backs_off_and_is_counted_against_max_restarts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sup = _supervisor(_stand_in(tmp_path, SAY_READY_THEN_CRASH, EXIT_EARLY), start_timeout_s=30.0,
                      backoff_s=0.1, max_backoff_s=0.4, max_restarts=3)
    running = Running(sup)
    elapsed = running.join(30)
    assert running.error is None, running.error
    assert running.result == 1 and sup.restarts == 3
    assert elapsed >= 0.3 + 0.1 + 0.2 + 0.4  # the first runtime's life, then each pause, doubling
    events = _events(capsys.readouterr().err)
    restarted = [e for e in events if e["event"] == "runtime_restarted"]
    assert [e["restarts"] for e in restarted] == [1, 2, 3], events
    assert all(e["failure"] == "exited before it was ready (code 3)" for e in restarted), events
    gave_up = [e for e in events if e["event"] == "supervisor_gave_up"]
    assert len(gave_up) == 1 and gave_up[0]["reason"] == "exited before it was ready (code 3)", events
    assert all(_reaped(pid) for pid in running.pids)


@pytest.mark.timeout(60)
def test_a_failed_restart_is_followed_by_another_that_serves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    count = tmp_path / "runs"
    code = (f"import sys, time\nfrom pathlib import Path\np = Path({str(count)!r})\n"
            "n = int(p.read_text()) if p.exists() else 0\np.write_text(str(n + 1))\n"
            "if n == 1:\n    sys.exit(3)\n"
            f"print({READY!r}, flush=True)\ntime.sleep(0.3)\nsys.exit(1 if n == 0 else 0)\n")
    sup = _supervisor([sys.executable, "-c", code], start_timeout_s=30.0, max_restarts=5)
    running = Running(sup)
    running.join(30)
    assert running.error is None, running.error
    assert running.result == 0 and sup.restarts == 2  # crash, a restart that failed, one that served
    restarted = [e for e in _events(capsys.readouterr().err) if e["event"] == "runtime_restarted"]
    assert [(e["restarts"], e["ready"]) for e in restarted] == [(1, False), (2, True)], restarted
    assert restarted[1]["reason"] == "exited before it was ready (code 3)"


@pytest.mark.timeout(60)
def test_stop_is_obeyed_while_waiting_for_a_ready_line(tmp_path: Path) -> None:
    sup = _supervisor(_stand_in(tmp_path, WEDGE, WEDGE), start_timeout_s=60.0)
    running = Running(sup)
    time.sleep(1.0)
    sup.stop()
    running.join(15)
    assert running.error is None, running.error
    assert sup.proc is not None and sup.proc.poll() is not None
    assert sup.restarts == 0


@pytest.mark.timeout(60)
def test_stop_is_obeyed_while_backing_off(tmp_path: Path) -> None:
    sup = _supervisor(_stand_in(tmp_path, SAY_READY_THEN_CRASH, EXIT_EARLY), start_timeout_s=30.0,
                      backoff_s=30.0, max_backoff_s=30.0)
    running = Running(sup)
    time.sleep(1.5)  # the runtime has crashed; the supervisor is in its 30 s pause
    sup.stop()
    assert running.join(10) < 10
    assert running.error is None, running.error
    assert sup.restarts == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first,timeout_s,message", [
    (WEDGE, 0.5, "the runtime was not ready within 0.5 s"),
    # a generous timeout: the stand-in exits by itself, however slowly a busy host starts it
    (EXIT_EARLY, 30.0, "the runtime exited before it was ready (code 3)")])
def test_a_first_start_that_fails_before_ready_is_a_clear_error(tmp_path: Path, first: str, timeout_s: float,
                                                                message: str) -> None:
    sup = _supervisor(_stand_in(tmp_path, first, first), start_timeout_s=timeout_s, max_restarts=5)
    running = Running(sup)
    running.join(30)
    assert isinstance(running.error, RuntimeError) and message in str(running.error), running.error
    assert sup.restarts == 0
    assert running.pids and all(_reaped(pid) for pid in running.pids)


def test_the_start_timeout_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.defaults()["supervise"]
    assert cfg["start_timeout_s"] > 0
    seen = {}
    monkeypatch.setattr(Supervisor, "run", lambda self: seen.setdefault("timeout", self.start_timeout_s) and 0)
    monkeypatch.setattr("signal.signal", lambda *_: None)
    main([], {**cfg, "start_timeout_s": 7.5})
    assert seen["timeout"] == 7.5
    with pytest.raises(ValueError, match="start_timeout_s"):
        Supervisor([], 1.0, 0.1, 1.0, start_timeout_s=0)
