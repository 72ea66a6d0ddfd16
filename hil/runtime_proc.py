"""A runtime for the rig: a subprocess started here, or one already running elsewhere."""

from __future__ import annotations

import queue
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from runtime.child_stdout import json_object, start_reader
from runtime.client import ControlClient, ControlError
from runtime.security import ClientKeys


class RuntimeExited(RuntimeError):
    """The runtime process ended while the rig was using it."""


class RuntimeProcess:
    """``python -m runtime serve`` on ipc sockets in a private directory; stopped on close.

    The child prints one JSON line when its sockets are bound; its log goes to ``log_path``.
    ``ground_ack``: override the runtime's ``[delivery] ground_ack`` (on by default), under which
    ``endpoints`` holds ``acks`` for the ground's acknowledgements. ``config``: a TOML overriding
    runtime/defaults.toml (``runtime serve --config``).
    """

    def __init__(self, device: str, log_path: Path, startup_timeout_s: float, profile: str | None = None,
                 ground_ack: bool | None = None, config: Path | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="hil-", dir="/tmp")
        # acks is bound only while the runtime's ground_ack is on; its ready line lists what it bound.
        names = ("tiles", "results", "control", "telemetry", "acks")
        endpoints = {n: f"ipc://{self._dir.name}/{n}" for n in names}
        cmd = [sys.executable, "-m", "runtime", "serve", "--device", device,
               "--store", str(Path(self._dir.name) / "store")]
        if profile:
            cmd += ["--profile", profile]
        if config is not None:
            cmd += ["--config", str(config)]
        if ground_ack is not None:  # else the runtime's own default ([delivery] ground_ack: on)
            cmd += ["--ground-ack" if ground_ack else "--no-ground-ack"]
        for name, endpoint in endpoints.items():
            cmd += [f"--{name}", endpoint]
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log)
        try:
            self.endpoints = self._wait_ready(startup_timeout_s)
        except BaseException:  # Ctrl-C (or SIGTERM) in the wait: else the child was left running, orphaned
            self.close()
            raise

    def _wait_ready(self, timeout_s: float) -> dict[str, str]:
        """The endpoints from the child's ready line: the first stdout line that is a JSON object
        with ``endpoints``. Every other line (a library's banner before it, a native plugin's
        chatter after it) goes to the log, and stdout is read to its end: a pipe no one reads blocks
        the writer at its 64 KiB'th byte, and a runtime thread that logs there would stop serving.
        On failure the child is stopped and the error says why: it exited (with its code: a bad
        config fails at once, not after the timeout), or it printed no ready line in ``timeout_s``.
        The reader is the supervisor's too (:func:`runtime.child_stdout.start_reader`)."""
        reader, said = start_reader(self.proc.stdout, _endpoints, self._to_log,  # type: ignore[arg-type]
                                    name="runtime-stdout")
        try:
            endpoints = said.get(timeout=timeout_s)  # None: stdout ended first
        except queue.Empty:
            endpoints = None
        if endpoints is not None:
            return endpoints
        reader.join(1.0)  # stdout ended: the thread is on its way out
        if self.proc.poll() is None and not reader.is_alive():  # stdout closed: the child is on its way out
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        code = self.proc.poll()
        self.close()
        if code is not None:
            raise RuntimeError(f"runtime exited with code {code} before it was ready; see {self._log.name}")
        raise RuntimeError(f"runtime did not start in {timeout_s} s; see {self._log.name}")

    def _to_log(self, line: bytes) -> None:
        """A stdout line that is not the ready line: into the log (dropped once close() closed it)."""
        self._log.write(line)
        self._log.flush()

    def check(self) -> None:
        """Raise :class:`RuntimeExited` if the runtime has exited: a rig waiting on its links then
        stops at once and says why, rather than after its timeouts as a link that fell silent."""
        code = self.proc.poll()
        if code is not None:
            raise RuntimeExited(f"the runtime exited with code {code} during the run; see {self._log.name}")

    def close(self, timeout_s: float = 30.0) -> int | None:
        """Ask for a shutdown (the runtime drains first), then make sure the process is gone."""
        if self.proc.poll() is None:
            try:
                if not hasattr(self, "endpoints"):  # never ready: nothing to ask, stop it now
                    raise ControlError("runtime not ready")
                ControlClient(self.endpoints["control"], timeout_s=5).shutdown()
                self.proc.wait(timeout_s)
            except (ControlError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
        self._log.close()
        self._dir.cleanup()
        return self.proc.returncode


def _endpoints(line: bytes) -> dict[str, str] | None:
    """The endpoints of a runtime's ready line: a JSON object with ``endpoints``; None for any other line."""
    endpoints = (json_object(line) or {}).get("endpoints")
    return endpoints if isinstance(endpoints, dict) else None


def remote_endpoints(control: str, timeout_s: float = 10.0, keys: ClientKeys | None = None) -> dict[str, str]:
    """Endpoints of a running runtime, from its ``status``; wildcard hosts become the control host.
    ``keys``: the ground's CURVE keys, for a runtime that protects its control socket with CURVE."""
    status = ControlClient(control, timeout_s=timeout_s, keys=keys).status()
    host = urlparse(control).hostname
    endpoints = {}
    for name, endpoint in status["endpoints"].items():
        for wildcard in ("0.0.0.0", "*"):
            endpoint = endpoint.replace(f"//{wildcard}:", f"//{host}:")
        endpoints[name] = endpoint
    endpoints["control"] = control
    return endpoints

