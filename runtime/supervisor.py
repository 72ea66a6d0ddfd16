"""``runtime supervise``: a parent process that restarts the runtime when its watchdog starves.

Why: the Health component reports a hung ingest, inference or output stage and stops feeding the
watchdog, but a stuck device request or socket cannot be abandoned safely from inside Python. As an
F´ deployment's health response would, a parent process watches the watchdog file and, when it has
not been touched for ``starve_s`` (or the runtime exits without being asked to), kills the runtime
and starts it again with the same arguments. The store keeps the installed model, so the new runtime
serves it at once; senders resend every tile that had no "done" (docs/protocol.md), so the restart
loses nothing. Restarts back off (``backoff_s`` doubling up to ``max_backoff_s``); a runtime that
exits cleanly (a ``shutdown`` command) ends the supervisor too.

Each restart is a JSON line on stderr: ``{"event": "runtime_restarted", "reason": ..., "restarts": n}``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

POLL_S = 0.2


def _say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "time": time.time(), **fields}), file=sys.stderr, flush=True)


class Supervisor:
    """Runs ``python -m runtime serve ARGS --watchdog-file F`` and restarts it when F starves."""

    def __init__(self, serve_args: list[str], starve_s: float, backoff_s: float, max_backoff_s: float,
                 max_restarts: int | None = None):
        """Timings come from ``[supervise]`` of runtime/defaults.toml (see :func:`main`)."""
        if "--watchdog-file" in serve_args:
            raise ValueError("the supervisor sets --watchdog-file itself")
        self._dir = tempfile.TemporaryDirectory(prefix="supervise-")
        self.watchdog = Path(self._dir.name) / "watchdog"
        self.cmd = [sys.executable, "-m", "runtime", "serve", *serve_args, "--watchdog-file", str(self.watchdog)]
        self.starve_s, self.backoff_s, self.max_backoff_s = starve_s, backoff_s, max_backoff_s
        self.max_restarts = max_restarts
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self._stopping = False

    def start(self) -> dict[str, Any]:
        """Start the runtime; returns its ready line (endpoints), which is printed on stdout."""
        self.watchdog.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the runtime exited before it was ready (code {self.proc.wait()})")
        print(line.decode().strip(), flush=True)
        self._started = time.monotonic()
        return json.loads(line)

    def starved_for(self) -> float:
        """Seconds since the watchdog was last fed (since the start, before the first feed)."""
        try:
            fed = self.watchdog.stat().st_mtime
            return max(0.0, time.time() - fed)
        except FileNotFoundError:
            return time.monotonic() - self._started

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> int:
        """Supervise until the runtime exits cleanly or ``max_restarts`` is spent; its exit code."""
        self.start()
        delay = self.backoff_s
        while True:
            time.sleep(POLL_S)
            code = self.proc.poll()  # type: ignore[union-attr]
            if self._stopping:
                return self._terminate()
            if code == 0:
                return 0  # asked to stop (shutdown command): not a failure
            reason = f"exited with code {code}" if code is not None else (
                f"watchdog starved for {self.starved_for():.1f} s" if self.starved_for() > self.starve_s else None)
            if reason is None:
                continue
            if self.max_restarts is not None and self.restarts >= self.max_restarts:
                _say("supervisor_gave_up", reason=reason, restarts=self.restarts)
                self._kill()
                return 1
            self._kill()
            time.sleep(delay)
            delay = min(self.max_backoff_s, delay * 2)
            self.restarts += 1
            self.start()
            _say("runtime_restarted", reason=reason, restarts=self.restarts, pid=self.proc.pid)  # type: ignore[union-attr]

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: also ends a stopped or wedged process
            self.proc.wait()

    def _terminate(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the runtime drains and exits
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self._kill()
        return self.proc.returncode if self.proc is not None else 0


def main(argv: list[str], cfg: dict[str, Any], starve_s: float | None = None, max_restarts: int | None = None) -> int:
    """``runtime supervise``: ``cfg`` is the ``[supervise]`` table; ``starve_s`` overrides its own."""
    supervisor = Supervisor(argv, starve_s=starve_s or float(cfg["starve_s"]), backoff_s=float(cfg["backoff_s"]),
                            max_backoff_s=float(cfg["max_backoff_s"]), max_restarts=max_restarts)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.stop())
    try:
        return supervisor.run()
    finally:
        supervisor._kill()
