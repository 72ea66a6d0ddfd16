"""``runtime supervise`` and what a runtime writes on stdout besides its ready line.

A native library may print on stdout while the runtime starts, and a runtime's stdout is a pipe the
supervisor owns. Before 2026-12-05 the supervisor read one line only: a line before the ready line
ended the supervisor with ``json.loads``'s "Expecting value" (on a restart too, which left the
payload unsupervised), and a runtime that wrote 64 KiB after it was blocked on the full pipe.

The runtimes are stand-in processes (``Supervisor.cmd`` replaced), real processes and pipes.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest

from runtime.supervisor import Supervisor

READY = '{"event": "ready", "endpoints": {}}'


def supervise_for(sup: Supervisor, seconds: float) -> tuple[int | None, BaseException | None, float]:
    """``sup.run()`` in a thread, for at most ``seconds`` (else the test fails, the runtime killed):
    its exit code, what it raised, and how long it took."""
    out: dict[str, object] = {}
    started = time.monotonic()

    def run() -> None:
        try:
            out["code"] = sup.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        sup.stop()
        if sup.proc is not None and sup.proc.poll() is None:
            sup.proc.kill()
        thread.join(40)
        pytest.fail(f"the supervisor was still running after {seconds} s")
    return out.get("code"), out.get("error"), time.monotonic() - started  # type: ignore[return-value]


def _run(code: str, seconds: float) -> tuple[int | None, BaseException | None, Supervisor]:
    """Supervise ``python -c code`` (a stand-in runtime) in a thread, for at most ``seconds``."""
    sup = Supervisor([], starve_s=60.0, backoff_s=0.05, max_backoff_s=0.2, max_restarts=2, start_timeout_s=30.0)
    sup.cmd = [sys.executable, "-c", code]
    code_, error, _ = supervise_for(sup, seconds)
    return code_, error, sup


@pytest.mark.timeout(60)
def test_a_line_before_the_ready_line_is_passed_over_not_the_end_of_the_supervisor(
        capfd: pytest.CaptureFixture[str]) -> None:
    code = f"import sys\nprint('[ INFO ] plugin loaded', flush=True)\nprint({READY!r}, flush=True)\nsys.exit(0)\n"
    result, error, sup = _run(code, 30)
    assert error is None, error
    assert result == 0 and sup.restarts == 0
    out, err = capfd.readouterr()
    assert out.strip() == READY  # the supervisor's stdout: the ready line alone
    assert "[ INFO ] plugin loaded" in err


@pytest.mark.timeout(60)
def test_a_runtime_that_writes_much_on_stdout_after_ready_is_not_blocked(capfd: pytest.CaptureFixture[str]) -> None:
    # 1 MiB after the ready line: a pipe no one reads holds 64 KiB, and the writer then waits for ever.
    code = (f"import sys\nprint({READY!r}, flush=True)\n"
            "for _ in range(1024):\n    sys.stdout.write('x' * 1023 + '\\n')\nsys.stdout.flush()\nsys.exit(0)\n")
    result, error, sup = _run(code, 20)
    assert error is None, error
    assert result == 0 and sup.restarts == 0
    assert capfd.readouterr().err.count("x" * 1023) == 1024


# -- the exit code of a supervisor told to stop ---------------------------------------------------
# Before 2026-12-05 it was the last runtime's returncode as Popen gives it: -9 for the runtime the
# supervisor had itself killed for starving its watchdog (sys.exit(-9): status 247, a "failed" stop
# to systemd), -15 for one still starting that the stop's SIGTERM ended.


def _stopped_after(code: str, seconds: float, **kw: float) -> int | None:
    sup = Supervisor([], **{"starve_s": 1.5, "backoff_s": 30.0, "max_backoff_s": 30.0, "start_timeout_s": 30.0, **kw})
    sup.cmd = [sys.executable, "-c", code]
    out: dict[str, int] = {}
    thread = threading.Thread(target=lambda: out.setdefault("code", sup.run()), daemon=True)
    thread.start()
    thread.join(seconds)
    sup.stop()
    thread.join(40)
    assert not thread.is_alive(), "the supervisor did not stop"
    assert sup.proc is not None and sup.proc.poll() is not None
    return out.get("code")


@pytest.mark.timeout(90)
def test_a_stop_during_the_back_off_after_a_starved_runtime_exits_0() -> None:
    # ready, then never feeds the watchdog: killed after 1.5 s, then a 30 s back-off, stopped in it
    assert _stopped_after(f"import time\nprint({READY!r}, flush=True)\ntime.sleep(120)\n", 6.0) == 0


@pytest.mark.timeout(90)
def test_a_stop_while_the_runtime_is_starting_exits_0() -> None:
    assert _stopped_after("import time\ntime.sleep(120)\n", 1.5) == 0
