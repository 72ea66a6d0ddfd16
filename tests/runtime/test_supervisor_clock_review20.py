"""``runtime supervise`` and the wall clock, and its SIGTERM grace as a setting (review of 2026-12-05).

A runtime touches its watchdog file each health period, and the time written there is the wall
clock's, which NTP (or a GPS fix, or an RTC set at boot) may step. The supervisor compared that mtime
with ``time.time()``: a step forward between a feed and the check looked like a starvation (a healthy
runtime killed), a step back dated feeds in the future (a hung runtime never restarted). Here a
stand-in runtime (a real process; ``Supervisor.cmd`` replaced) feeds the real watchdog file with
mtimes far in the past or future, as a runtime does after such a step.

The grace a stopping supervisor gives its runtime after SIGTERM was 30 s, fixed: now ``[supervise]
stop_grace_s``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runtime import config
from runtime.store import BundleStore, read_bundle
from runtime.supervisor import ROLL_BACK_AFTER, Supervisor, main
from tests.runtime.test_supervisor_stdout_review19 import supervise_for

READY = '{"event": "ready", "endpoints": {}}'
REPO = Path(__file__).resolve().parents[2]
#: About four months: a wall-clock step far past anything a poll or a health period could hide.
STEP_S = 1e7


def _feeding(watchdog: Path, offset_s: float | str, feed_s: float, then: str) -> str:
    """A stand-in runtime: ready, then feeds ``watchdog`` every 0.2 s for ``feed_s`` with the wall
    clock stepped by ``offset_s`` ("alternate": a step back and forth at each feed), then ``then``."""
    offset = f"(-{STEP_S} if i % 2 else {STEP_S})" if offset_s == "alternate" else repr(offset_s)
    return (f"import os, sys, time\nprint({READY!r}, flush=True)\nend = time.monotonic() + {feed_s}\ni = 0\n"
            "while time.monotonic() < end:\n"
            f"    t = time.time() + {offset}\n    open({str(watchdog)!r}, 'a').close()\n"
            f"    os.utime({str(watchdog)!r}, (t, t))\n    i += 1\n    time.sleep(0.2)\n{then}\n")


def _run(sup: Supervisor, seconds: float) -> tuple[int | None, float]:
    """``sup.run()`` in a thread, for at most ``seconds``: its result and how long it took."""
    code, error, took = supervise_for(sup, seconds)
    if error is not None:
        raise error
    return code, took


@pytest.mark.timeout(60)
@pytest.mark.parametrize("offset_s", [-STEP_S, STEP_S, "alternate"])
def test_a_fed_watchdog_dated_by_a_stepped_clock_is_not_starved(offset_s: float | str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    sup = Supervisor([], starve_s=1.5, backoff_s=0.05, max_backoff_s=0.1, max_restarts=0, start_timeout_s=30.0)
    sup.cmd = [sys.executable, "-c", _feeding(sup.watchdog, offset_s, 4.0, "sys.exit(0)")]
    code, _ = _run(sup, 30)
    # Before the fix, a feed dated in the past was a starvation of STEP_S: killed at the first poll.
    assert code == 0 and sup.restarts == 0, capsys.readouterr().err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("offset_s", [STEP_S, -STEP_S, "alternate"])
def test_a_watchdog_dated_by_a_stepped_clock_that_stops_being_fed_starves(offset_s: float | str,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    sup = Supervisor([], starve_s=1.5, backoff_s=0.05, max_backoff_s=0.1, max_restarts=0, start_timeout_s=30.0)
    sup.cmd = [sys.executable, "-c", _feeding(sup.watchdog, offset_s, 1.0, "time.sleep(60)")]  # then hung
    # Before the fix, a feed dated in the future was never older than now: the hang was never seen.
    code, took = _run(sup, 25)
    assert code == 1, code  # max_restarts 0: gave up on the first restart it wanted
    assert "watchdog starved" in capsys.readouterr().err
    assert took < 15


def test_an_uplink_is_judged_by_when_the_supervisor_saw_it_not_by_a_stepped_clock(
        tmp_path: Path, brightness_bundle: Path) -> None:
    """An uplink into a runtime that had served an hour crashes each runtime at once; the wall clock
    steps forward a day after the supervisor saw the link (the link's mtime is then a day old on it).
    Before the fix that day, capped by the first runtime's hour, proved the uplink: never rolled back."""
    from tests.runtime.test_state_review import _variant

    store = BundleStore(tmp_path / "store")
    store.install(_variant(brightness_bundle, tmp_path, "good"))
    store.install(_variant(brightness_bundle, tmp_path, "uplinked"))
    sup = Supervisor(["--store", str(store.root)], starve_s=2, backoff_s=0.05, max_backoff_s=0.1,
                     max_restarts=5, start_timeout_s=5)
    sup.start_failure = None
    sup._started = time.monotonic() - 3600  # the runtime that took the uplink
    # A poll of the supervisor sees the new link (getattr: the supervisor before the fix had no such look).
    getattr(sup, "_current_since", lambda: None)()
    a_day_ago = time.time() - 86400  # as the link's mtime reads once the wall clock stepped a day forward
    os.utime(store.root / "current", (a_day_ago, a_day_ago), follow_symlinks=False)
    sup._judge_current()
    for _ in range(ROLL_BACK_AFTER - 1):  # the restarts, each taken down at once
        sup._started = time.monotonic()
        sup._judge_current()
    assert read_bundle(store.root / "current").name == "good"


@pytest.mark.timeout(60)
def test_the_sigterm_grace_of_a_stop_is_a_setting(tmp_path: Path) -> None:
    """A runtime that does not end of the SIGTERM passed on is SIGKILLed after ``stop_grace_s``, not
    after a fixed 30 s."""
    deaf = tmp_path / "ignores-sigterm"
    sup = Supervisor([], starve_s=30.0, backoff_s=0.05, max_backoff_s=0.1, start_timeout_s=30.0, stop_grace_s=0.5)
    sup.cmd = [sys.executable, "-c", f"import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               f"open({str(deaf)!r}, 'w').close()\nprint({READY!r}, flush=True)\ntime.sleep(120)\n"]
    out: dict[str, int] = {}
    thread = threading.Thread(target=lambda: out.setdefault("code", sup.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not deaf.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # its ready line read: serving
    stopped = time.monotonic()
    sup.stop()
    try:
        thread.join(20)
        assert not thread.is_alive(), "the supervisor did not stop"
        assert out["code"] == 128 + 9  # SIGKILLed, as a shell says
        assert time.monotonic() - stopped < 5
    finally:
        sup._kill()  # a stand-in left over by a failure would sleep on, deaf to SIGTERM


def test_the_grace_is_read_from_the_config_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.defaults()["supervise"]
    assert cfg["stop_grace_s"] > 0
    seen = {}
    monkeypatch.setattr(Supervisor, "run", lambda self: seen.setdefault("grace", self.stop_grace_s) and 0)
    monkeypatch.setattr("signal.signal", lambda *_: None)
    main([], {**cfg, "stop_grace_s": 7.5})
    assert seen["grace"] == 7.5
    assert Supervisor([], 2.0, 0.1, 1.0).stop_grace_s == cfg["stop_grace_s"]  # the table's own when not given
    for bad in (0, -1.0, float("inf"), float("nan"), "30", True):
        with pytest.raises(ValueError, match=r"\[supervise\] stop_grace_s must be a finite number > 0"):
            Supervisor([], 2.0, 0.1, 1.0, stop_grace_s=bad)


def test_a_bad_grace_in_a_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[supervise]\nstop_grace_s = 0\n")
    done = subprocess.run([sys.executable, "-m", "runtime", "supervise", "--config", str(bad), "--", "--device", "CPU"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "error: [supervise] stop_grace_s must be a finite number > 0; got 0" in done.stderr
