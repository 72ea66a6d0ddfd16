"""``runtime supervise``: a parent process that restarts the runtime when its watchdog starves.

Why: the Health component reports a hung ingest, inference or output stage and stops feeding the
watchdog, but a stuck device request or socket cannot be abandoned safely from inside Python. As an
F´ deployment's health response would, a parent process watches the watchdog file and, when it has
not been touched for ``starve_s`` (or the runtime exits without being asked to), kills the runtime
and starts it again with the same arguments. The store keeps the installed model, so the new runtime
serves it at once; senders resend every tile that had no "done" (docs/protocol.md), so the restart
loses nothing. Restarts back off (``backoff_s`` doubling up to ``max_backoff_s``); a runtime that
exits cleanly (a ``shutdown`` command) ends the supervisor too. Told to stop (SIGTERM, SIGINT), it
passes SIGTERM on and SIGKILLs a runtime still running ``stop_grace_s`` later. Starvation is judged
on the monotonic clock, from when the supervisor saw the file's mtime change (:meth:`Supervisor.starved_for`):
the mtime itself is wall-clock time, which NTP may step.

A runtime is ready when it prints its ready line, after it has opened the device and loaded the
model; the supervisor waits for that line at most ``start_timeout_s``, and only until it is told to
stop. A restarted runtime that exits or stays silent that long (a device that hangs on opening, or
is still held by the runtime just killed) is killed and counts as one more restart, with the same
back-off and ``max_restarts``; a first start that fails so is an error, as it always was. Any other
line a runtime writes on stdout (a native library's chatter, before or after the ready line) is
copied to the supervisor's stderr, and its stdout is read to its end, so that it never fills
(runtime/child_stdout.py, the reader the rig's runtime uses too).

Every runtime it starts uses the same store, so that a model uplinked to one is what the next serves:
the operator's ``--store`` (or ``[models] store`` of a ``--config``), else a store made once, in the
system's temporary folder, named in a ``supervisor_store`` line and kept after the supervisor ends
(unless no runtime installed a model in it).
A restarted runtime serves the store's ``current`` bundle: ``--model`` is left out of its arguments
while the store has one (a runtime started by hand with ``--model`` still serves that model, as does
the supervisor's first start; a store that cannot be written keeps ``--model``, as it installs none).

Each restart is a JSON line on stderr: ``{"event": "runtime_restarted", "reason": ..., "restarts": n,
"ready": true}``; one whose runtime was not ready has ``"ready": false`` and ``"failure"``, which is
also the reason of the next restart.

Length: one process's life cycle. Starting a runtime, judging it, backing off, rolling the store
back and the helpers that read serve's options all decide together when a runtime is restarted;
split, each would need the others' state.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime.child_stdout import json_object, start_reader
from runtime.config import check_number

POLL_S = 0.2
#: Runtimes in a row that got ready on the store's current bundle and then failed before a healthy
#: run, after which that bundle (if it never had a healthy run here) is rolled back to ``previous``.
ROLL_BACK_AFTER = 3


#: The supervisor's events (JSON lines on stderr) with their severity, as runtime/interface.py EVENTS
#: gives the runtime's; docs/reliability.md describes each.
EVENTS = {
    "supervisor_store": "ACTIVITY_LO",
    "runtime_restarted": "WARNING_HI",
    "supervisor_gave_up": "FATAL",
    "model_rolled_back": "WARNING_HI",
    "model_roll_back_failed": "WARNING_HI",
}


def _say(event: str, **fields: Any) -> None:
    line = {"event": event, "severity": EVENTS[event], "time": time.time(), **fields}
    print(json.dumps(line), file=sys.stderr, flush=True)



class StartFailure(RuntimeError):
    """The first runtime a supervisor starts never got ready: its own error is in its output above."""

class Supervisor:
    """Runs ``python -m runtime serve ARGS --watchdog-file F`` and restarts it when F starves."""

    def __init__(self, serve_args: list[str], starve_s: float, backoff_s: float, max_backoff_s: float,
                 max_restarts: int | None = None, start_timeout_s: float | None = None,
                 stop_grace_s: float | None = None):
        """Timings come from ``[supervise]`` of runtime/defaults.toml (see :func:`main`); without
        ``start_timeout_s`` or ``stop_grace_s``, that table's own.

        Raises:
            ValueError: if a timing is not a finite number > 0 (``max_backoff_s`` at least
                ``backoff_s``), ``max_restarts`` is not an integer >= 0, or ``serve_args`` set
                ``--watchdog-file`` (the supervisor's own).
        """
        if any(arg == "--watchdog-file" or arg.startswith("--watchdog-file=") for arg in serve_args):
            raise ValueError("the supervisor sets --watchdog-file itself")
        if start_timeout_s is None or stop_grace_s is None:
            from runtime import config
            table = config.defaults()["supervise"]
            start_timeout_s = table["start_timeout_s"] if start_timeout_s is None else start_timeout_s
            stop_grace_s = table["stop_grace_s"] if stop_grace_s is None else stop_grace_s
        # Each must be > 0: a starve_s <= 0 restarts a healthy runtime in a loop, a back-off of 0
        # restarts without a pause.
        self.start_timeout_s = check_number("[supervise] start_timeout_s", start_timeout_s, 0, strict=True)
        # 0 would SIGKILL a runtime at once, with no drain: its senders resend what it held, but a stop is
        # then no cleaner than a crash.
        self.stop_grace_s = check_number("[supervise] stop_grace_s", stop_grace_s, 0, strict=True)
        self.starve_s = check_number("[supervise] starve_s (--starve-s)", starve_s, 0, strict=True)
        self.backoff_s = check_number("[supervise] backoff_s", backoff_s, 0, strict=True)
        self.max_backoff_s = check_number("[supervise] max_backoff_s", max_backoff_s, self.backoff_s)
        self.max_restarts = None if max_restarts is None else check_number("--max-restarts", max_restarts, 0,
                                                                           integer=True)
        # A runtime feeds its watchdog once per [health] period_s at best: a starve_s no longer than
        # that restarted a healthy, idle runtime every starve_s, for ever.
        period_s = _health_period_s(serve_args)
        if self.starve_s <= period_s:
            raise ValueError(f"[supervise] starve_s (--starve-s) {self.starve_s:g} must be more than the runtime's "
                             f"[health] period_s ({period_s:g}), how often a healthy runtime feeds its watchdog")
        self.start_failure: str | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="supervise-")
        self.watchdog = Path(self._dir.name) / "watchdog"
        serve_args, self.store, self._made_store = _with_store(serve_args)
        self.cmd = [sys.executable, "-m", "runtime", "serve", *serve_args, "--watchdog-file", str(self.watchdog)]
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self._stopping = False
        self._proven: set[str] = set()  # bundles that served a healthy run under this supervisor
        self._crashes: tuple[str | None, int] = (None, 0)  # (current bundle, ready runtimes failed on it in a row)
        # Feeds and uplinks are judged on the monotonic clock, from when this supervisor saw a file
        # change: a file's mtime is wall-clock time, which NTP may step (see starved_for).
        self._started = self._fed_at = time.monotonic()
        self._fed_stamp: int | None = None  # the watchdog's mtime (ns) when last seen; None: not fed yet
        self._current_seen: tuple[tuple[str, int] | None, float] = (None, 0.0)  # see _current_since

    def command(self, restart: bool) -> list[str]:
        """The command of a runtime: :attr:`cmd`, less ``--model`` on a restart when the store has a
        ``current`` bundle and can be written, so that a model uplinked since the first start (and
        installed as ``current``) is what serves again, not ``--model`` reinstalled over it. A store
        that cannot be written installed nothing (the first runtime served ``--model`` without
        persisting it), so there ``--model`` stays; so does a full one, which ``os.access`` calls writable
        (:func:`runtime.store.can_write`: the probe a runtime asks too)."""
        if not (restart and os.path.lexists(self.store / "current")):
            return list(self.cmd)
        from runtime.store import can_write
        if not can_write(self.store / "bundles"):
            return list(self.cmd)
        return _without_model(self.cmd)

    def start(self) -> dict[str, Any] | None:
        """Start the runtime and wait for its ready line (endpoints), which is printed on stdout and
        returned. The wait ends after ``start_timeout_s`` or at :meth:`stop`: then, or when the
        runtime exits first, the result is None and :attr:`start_failure` says why; the runtime is
        killed and reaped, except after stop(), which leaves it to :meth:`_terminate`. Any start
        after the first (``restarts`` > 0) is a restart (see :meth:`command`)."""
        self.watchdog.unlink(missing_ok=True)
        self.start_failure = None
        # The runtime is told who supervises it (die_with_parent): a supervisor killed outright (SIGKILL,
        # the OOM killer) runs no clean-up, and its runtime would serve on unsupervised, holding the device.
        proc = self.proc = subprocess.Popen(self.command(restart=self.restarts > 0), stdout=subprocess.PIPE,
                                            env={**os.environ, PARENT_ENV: str(os.getpid())})
        # A thread reads the line, so that the wait for it can end: readline() itself cannot time out.
        # It reads the runtime's stdout to its end, not only that line: a native library may write
        # there before it, and a pipe no one reads blocks the runtime at its 64 KiB'th byte, which then
        # starves the watchdog. Every other line is copied to stderr (runtime.child_stdout).
        reader, lines = start_reader(proc.stdout, _ready_line, _to_stderr,  # type: ignore[arg-type]
                                     name="supervisor-stdout")
        deadline = time.monotonic() + self.start_timeout_s
        ready: tuple[bytes, dict[str, Any]] | None = None
        ended = False  # stdout ended before the ready line
        while ready is None and not ended and not self._stopping and (left := deadline - time.monotonic()) > 0:
            try:
                ready = lines.get(timeout=min(POLL_S, left))
                ended = ready is None
            except queue.Empty:
                pass
        if ready is not None:
            line, said = ready  # parsed once, by the reader (_ready_line)
            print(line.decode().strip(), flush=True)
            self._started = self._fed_at = time.monotonic()
            self._fed_stamp = None
            return said
        if not ended and self._stopping:
            self.start_failure = "was stopped before it was ready"
            return None
        self._kill()  # SIGKILL and wait: the runtime has taken no tile yet
        reader.join(1.0)  # ends at the pipe's end (unless a child of the runtime still holds it open)
        self.start_failure = (f"exited before it was ready (code {proc.returncode})" if ended else
                              f"was not ready within {self.start_timeout_s:g} s (start_timeout_s)")
        return None

    def starved_for(self) -> float:
        """Seconds since the supervisor last saw the watchdog fed (since the ready line, before the
        first feed), on the monotonic clock.

        A feed is a change of the file's mtime, whatever its value: the runtime touches the file
        each health period, and the time it writes is the wall clock's. Until 2026-12-05 that mtime
        was compared with ``time.time()``: a wall-clock step (NTP, a GPS fix, an RTC set at boot)
        between a feed and the check faked a starvation (a step forward: a healthy runtime killed)
        or hid one (a step back: a feed dated in the future, and a hung runtime left hung). Called
        each poll (``POLL_S``), so a feed is seen at most that late.
        """
        try:
            stamp: int | None = self.watchdog.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None  # not fed since the start (start() removes it)
        now = time.monotonic()
        if stamp is not None and stamp != self._fed_stamp:
            self._fed_stamp, self._fed_at = stamp, now
        return now - self._fed_at

    def stop(self) -> None:
        self._stopping = True

    def run(self) -> int:
        """Supervise until the runtime exits cleanly or ``max_restarts`` is spent; its exit code.

        Raises:
            StartFailure: (a RuntimeError) if the first runtime exits, or is not ready within ``start_timeout_s``,
                before its ready line (a runtime that never served is no case for restarting).
        """
        try:
            return self._supervise()
        finally:
            self._drop_empty_store()

    def _drop_empty_store(self) -> None:
        """Remove the store made for this supervisor if no runtime installed a bundle in it (a first
        start that failed): kept, it would be an empty folder left in the temporary folder for nothing."""
        if self._made_store and not os.path.lexists(self.store / "current"):
            shutil.rmtree(self.store, ignore_errors=True)

    def _supervise(self) -> int:
        """:meth:`run`'s loop."""
        if self.start() is None:
            if self._stopping:
                return self._terminate()
            raise StartFailure(f"the runtime {self.start_failure}")
        delay = self.backoff_s
        reason: str | None = None  # set: the runtime is to be restarted, for this
        while True:
            if reason is None:
                time.sleep(POLL_S)
                code = self.proc.poll()  # type: ignore[union-attr]
                if self._stopping:
                    return self._terminate()
                if code == 0:
                    return 0  # asked to stop (shutdown command): not a failure
                self._current_since()  # an uplink's time is when it is seen (see _judge_current)
                starved_s = self.starved_for()
                reason = f"exited with code {code}" if code is not None else (
                    f"watchdog starved for {starved_s:.1f} s" if starved_s > self.starve_s else None)
                if reason is None:
                    continue
            if self.max_restarts is not None and self.restarts >= self.max_restarts:
                _say("supervisor_gave_up", reason=reason, restarts=self.restarts)
                self._kill()
                return 1
            self._kill()
            # A runtime that served (ready, then healthy) for longer than a hang takes to be seen plus
            # the longest pause failed on its own: the next restart is a first one again, not one more
            # of a streak (a crash a day kept the pause at max_backoff_s for good).
            if self.start_failure is None and time.monotonic() - self._started >= self._healthy_s:
                delay = self.backoff_s
            self._judge_current()
            if self._pause(delay):
                return self._terminate()
            delay = min(self.max_backoff_s, delay * 2)
            self.restarts += 1
            ready = self.start()
            if self._stopping:
                return self._terminate()
            failed = {} if ready is not None else {"failure": self.start_failure}
            pid = self.proc.pid  # type: ignore[union-attr]
            _say("runtime_restarted", reason=reason, restarts=self.restarts, pid=pid,
                 ready=ready is not None, **failed)
            reason = self.start_failure  # a runtime not ready is one more to restart, after the next pause

    @property
    def _healthy_s(self) -> float:
        """Seconds of serving that make a run healthy: longer than a hang takes to starve the
        watchdog, plus the longest pause before a restart."""
        return self.starve_s + self.max_backoff_s

    def _judge_current(self) -> None:
        """After a runtime failed: roll the store back when its ``current`` bundle, never proven by a
        healthy run here, has now taken ROLL_BACK_AFTER ready runtimes down in a row (a model that
        passes its acceptance test but crashes or hangs the runtime on real tiles), so that the next
        start serves ``previous`` rather than the same crash for ever. A bundle is proven by serving
        ``_healthy_s`` since it became current (:meth:`_current_since`, for one uplinked into a runtime
        that had run for hours), not by its runtime's age. Called with no runtime running."""
        link = self.store / "current"
        since = self._current_since()
        if since is None:
            return
        current = os.path.basename(os.readlink(link))
        if self.start_failure is not None:
            return  # not ready: the runtime's own start-up falls back (runtime.server._load_stored)
        now = time.monotonic()
        served_s = min(now - self._started, now - since)
        if served_s >= self._healthy_s:
            self._proven.add(current)
            self._crashes = (current, 0)
            return
        failed = self._crashes[1] + 1 if self._crashes[0] == current else 1
        self._crashes = (current, failed)
        if failed < ROLL_BACK_AFTER or current in self._proven:
            return
        from runtime.store import BundleStore
        try:
            BundleStore(self.store).roll_back()
        except (OSError, ValueError) as exc:  # no previous, or a read-only store: nothing to fall back to
            _say("model_roll_back_failed", bundle=current, failures=failed, detail=str(exc))
            return
        self._crashes = (None, 0)
        _say("model_rolled_back", bundle=current, failures=failed,
             detail=f"the current model took {failed} runtimes in a row down before it had served "
                    f"{self._healthy_s:g} s")

    def _current_since(self) -> float | None:
        """The monotonic time since which the store's ``current`` link has been what it is now; None
        when there is none (or it is no link).

        Why not the link's mtime: that is wall-clock time, and a step of the wall clock would prove an
        uplink that crashed at once (a step forward) or never prove one (a step back). The supervisor
        looks at the link each poll and dates a change (a new link: the store renames one over it) by
        its own monotonic clock. A link it sees for the first time (made before this supervisor, or
        first looked at here) is dated by its mtime's age on the wall clock, at most now: a step before
        that first look cannot be told apart, but its runtime's age still bounds what the link's age
        proves (:meth:`_judge_current`).
        """
        try:
            target = os.readlink(self.store / "current")
            st = os.lstat(self.store / "current")
        except OSError:  # none, or not a link
            return None
        seen = (target, st.st_ino)  # a new link each install or roll-back (a rename); not its mtime, a clock's
        if seen != self._current_seen[0]:
            now = time.monotonic()
            first = self._current_seen[0] is None
            self._current_seen = (seen, now - max(0.0, time.time() - st.st_mtime) if first else now)
        return self._current_seen[1]

    def _pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until :meth:`stop`; whether stop() was called."""
        end = time.monotonic() + seconds
        while not self._stopping and (left := end - time.monotonic()) > 0:
            time.sleep(min(POLL_S, left))
        return self._stopping

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: also ends a stopped or wedged process
            self.proc.wait()

    def _terminate(self) -> int:
        """Stop the running runtime (SIGTERM, SIGKILL after ``stop_grace_s``) at :meth:`stop`; the exit code.

        That is the runtime's own; 0 when it ended of that SIGTERM (a runtime still starting keeps
        SIGTERM's default action), or when no runtime was running (a stop during a back-off: the one
        before was killed or had failed, and is what the restart that was stopped was for; its code,
        -9 after a starved watchdog, was returned); another death by signal N is 128 + N, as a shell
        says (a negative code given to ``sys.exit`` became 247 for a SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0
        self.proc.send_signal(signal.SIGTERM)  # the runtime drains and exits
        try:
            code = self.proc.wait(self.stop_grace_s)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self.proc.returncode
        if code == -signal.SIGTERM:
            return 0
        return 128 - code if code < 0 else code


#: The environment variable that tells a runtime its supervisor's pid (:func:`die_with_parent`).
PARENT_ENV = "RUNTIME_SUPERVISOR_PID"

#: Linux's prctl option that asks for a signal when the parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """In a runtime started by a supervisor (:data:`PARENT_ENV` set): ask Linux to send it SIGTERM
    when the supervisor dies, so that it drains and exits (or, still starting, ends at once) rather
    than serve on unsupervised, holding the device the next supervisor's runtime must open. A
    supervisor stopped cleanly stops its runtime itself; this covers one killed outright (SIGKILL,
    the OOM killer), which runs no clean-up. A supervisor gone before the request was made ends the
    runtime at once. Elsewhere than on Linux, or without the variable, nothing is done.

    Returns:
        Whether the request was made.
    """
    supervisor = os.environ.get(PARENT_ENV, "")
    if not supervisor.isdigit() or not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        return False
    try:
        os.kill(int(supervisor), 0)
    except ProcessLookupError:  # it died before the request: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)
    except PermissionError:  # alive, under another user
        pass
    return True


def _ready_line(line: bytes) -> tuple[bytes, dict[str, Any]] | None:
    """``line`` and what it says if it is a runtime's ready line, else None: a JSON object (serve's says
    ``"event": "ready"``; any object is taken, as it always was, so that a stand-in's may say less). The
    line is kept as it came, to be printed as it came; the object is what :meth:`Supervisor.start` returns,
    so that the line is parsed here only."""
    said = json_object(line)
    return None if said is None else (line, said)


def _to_stderr(line: bytes) -> None:
    """A runtime's stdout line other than its ready line: copied to the supervisor's stderr, as it
    came (bytes: a native library's output need not be UTF-8)."""
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is None:  # a stderr with no buffer (a test's capture): dropped, only drained
        return
    buffer.write(line)
    sys.stderr.flush()


def _option(args: list[str], name: str) -> str | None:
    """The value of ``--name V`` or ``--name=V`` in ``args`` (the last one, as argparse takes it)."""
    value = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg[len(name) + 1:]
    return value


def _health_period_s(serve_args: list[str]) -> float:
    """The ``[health] period_s`` of a runtime started with ``serve_args``: its ``--config``'s, else the
    default (a ``--config`` that cannot be read, or a period that is no number, is serve's to report)."""
    from runtime import config

    default = float(config.defaults()["health"]["period_s"])
    config_file = _option(serve_args, "--config")
    if not config_file:
        return default
    try:
        period = config.defaults(Path(config_file))["health"]["period_s"]
    except (OSError, ValueError):
        return default
    return float(period) if isinstance(period, (int, float)) and not isinstance(period, bool) else default


def _without_model(cmd: list[str]) -> list[str]:
    """``cmd`` without its ``--model M`` / ``--model=M`` options."""
    out: list[str] = []
    skip = False
    for arg in cmd:
        if skip:
            skip = False
        elif arg == "--model":
            skip = True
        elif not arg.startswith("--model="):
            out.append(arg)
    return out


def _with_store(serve_args: list[str]) -> tuple[list[str], Path, bool]:
    """``serve_args`` with a store every runtime shares, that store, and whether it was made here.

    The operator's ``--store``, or ``[models] store`` of the ``--config`` given to serve, is kept; with
    neither, each runtime would make a fresh temporary store and a restart would lose the model
    uplinked before it, so one is made here, once, and named on stderr (``supervisor_store``). It
    outlives the supervisor, so that the operator can start again on it with ``--store``.
    """
    for arg in serve_args:  # serve takes no abbreviation (runtime.__main__), nor does what reads its options
        opt = arg.split("=", 1)[0]
        for name in ("--model", "--store", "--config"):
            if opt.startswith("--") and len(opt) > 2 and opt != name and name.startswith(opt):
                raise ValueError(f"{opt}: write {name} in full (serve's options take no abbreviations)")
    given = _option(serve_args, "--store")
    if given:
        return list(serve_args), Path(given), False
    config_file = _option(serve_args, "--config")
    if config_file:
        from runtime import config
        try:
            stored = str(config.defaults(Path(config_file))["models"]["store"])
        except (OSError, ValueError):
            stored = ""  # serve reports a bad --config itself, at its first start
        if stored:
            return list(serve_args), Path(stored), False
    made = Path(tempfile.mkdtemp(prefix="supervise-store-"))
    _say("supervisor_store", path=str(made), detail="no --store given: every runtime this supervisor starts "
         "uses this store, kept after it ends once a model is installed (serve or supervise again with --store "
         "to reuse it)")
    return [*serve_args, "--store", str(made)], made, True


def main(argv: list[str], cfg: dict[str, Any], starve_s: float | None = None, max_restarts: int | None = None) -> int:
    """``runtime supervise``: ``cfg`` is the ``[supervise]`` table; ``starve_s`` (``--starve-s``)
    overrides its own, and is checked like it (> 0: a 0 is not taken for "the default")."""
    supervisor = Supervisor(argv, starve_s=cfg["starve_s"] if starve_s is None else starve_s,
                            backoff_s=cfg["backoff_s"], max_backoff_s=cfg["max_backoff_s"], max_restarts=max_restarts,
                            start_timeout_s=cfg["start_timeout_s"], stop_grace_s=cfg["stop_grace_s"])
    with handlers_restored(signal.SIGTERM, signal.SIGINT):
        signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
        signal.signal(signal.SIGINT, lambda *_: supervisor.stop())
        try:
            return supervisor.run()
        finally:
            supervisor._kill()
            supervisor._drop_empty_store()


@contextlib.contextmanager
def handlers_restored(*signals: signal.Signals) -> Iterator[None]:
    """The handlers of ``signals`` put back as they were when the block ends: an entry point called
    in-process (a test, a rig) gives its caller its own back. (A supervise left its own, and a Ctrl-C
    meant for its caller later reached the finished supervisor's stop() and was lost.)"""
    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
