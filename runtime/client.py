"""A control-channel client: what the ground (and hil) uses to command a runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zmq

from runtime import config, protocol
from runtime.bundle import Bundle, read_bundle
from runtime.security import ClientKeys


#: How long a reply is waited for when the caller does not say (a load_model: :meth:`ControlClient.load_model`).
DEFAULT_TIMEOUT_S = 30.0


class ControlError(RuntimeError):
    """The runtime did not answer, or answered that the command failed: ``reply`` holds that
    answer (None when there was none), so that a caller can show what the runtime said."""

    def __init__(self, message: str, reply: dict[str, Any] | None = None):
        super().__init__(message)
        self.reply = reply


class ControlClient:
    """Request/reply over the runtime's control socket, with a timeout on every reply.

    A REQ socket that misses a reply is stuck, so after a timeout the socket is thrown away and a
    fresh one is made (the ZeroMQ guide's Lazy Pirate).
    """

    def __init__(self, endpoint: str, timeout_s: float | None = None, context: zmq.Context | None = None,
                 keys: ClientKeys | None = None):
        """``timeout_s``: how long every reply is waited for; by default 30 s, and for a
        ``load_model`` the time a runtime allows a load (:meth:`load_model`)."""
        self.endpoint = endpoint
        self.keys = keys
        self._timeout_given = timeout_s is not None
        self.timeout_ms = int((DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s) * 1000)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._connect()

    def _connect(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        if self.keys is not None:
            self.keys.apply(sock)
        sock.connect(self.endpoint)
        return sock

    def request(self, cmd: str, frames: list[bytes] = (), timeout_s: float | None = None, **args: Any) -> dict[str, Any]:
        """Send a command and return the reply; raises ControlError on timeout or ``ok: false``."""
        timeout = self.timeout_ms if timeout_s is None else int(timeout_s * 1000)
        # A REQ socket whose connection was dropped (a refused CURVE handshake) blocks a plain
        # send forever: the send waits at most the timeout too.
        if not self._sock.poll(timeout, zmq.POLLOUT):
            self._sock.close()
            self._sock = self._connect()
            raise ControlError(f"could not send {cmd!r} to {self.endpoint} in {timeout / 1000:.0f} s")
        self._sock.send_multipart([protocol.dumps({"v": protocol.PROTOCOL_VERSION, "cmd": cmd, **args}), *frames])
        if not self._sock.poll(timeout):
            self._sock.close()
            self._sock = self._connect()
            raise ControlError(f"no reply to {cmd!r} from {self.endpoint} in {timeout / 1000:.0f} s")
        reply = protocol.loads(self._sock.recv_multipart()[0])
        if not reply.get("ok"):
            raise ControlError(f"{cmd} refused: {reply.get('error')}", reply)
        return reply

    def status(self, timeout_s: float | None = None) -> dict[str, Any]:
        return self.request("status", timeout_s=timeout_s)

    def load_model(self, bundle: Bundle | str | os.PathLike[str], timeout_s: float | None = None) -> dict[str, Any]:
        """Upload a bundle; the runtime verifies, compiles and test-runs it before it serves.

        The reply is waited for ``timeout_s``, else the client's own timeout where one was given,
        else the time a runtime allows a load (``[health] load_timeout_s``, 120 s): a compile on a
        stick can take longer than a status takes, and a client that gave up at 30 s said "no
        reply" for a model the runtime went on to install and serve."""
        if not isinstance(bundle, Bundle):
            bundle = read_bundle(Path(bundle))
        if timeout_s is None and not self._timeout_given:
            timeout_s = max(DEFAULT_TIMEOUT_S, float(config.defaults()["health"]["load_timeout_s"]))
        signature = {} if bundle.signature is None else {"signature": bundle.signature.decode("utf-8")}
        return self.request("load_model", bundle.frames(), timeout_s=timeout_s, manifest_sha256=bundle.id, **signature)

    def shutdown(self) -> dict[str, Any]:
        return self.request("shutdown")

    def close(self) -> None:
        self._sock.close()


#: The commands of ``python -m runtime control``, as typed, and what each asks the runtime.
CLI_COMMANDS = {"status": "status", "load-model": "load_model", "shutdown": "shutdown"}


def control_command(endpoint: str, command: str, model: str | os.PathLike[str] | None = None,
                    keys: ClientKeys | None = None, timeout_s: float | None = None) -> tuple[int, dict[str, Any]]:
    """One command of ``python -m runtime control`` (an operator's client of a serving runtime, so
    that the control socket is not reachable from Python alone): the exit status (0 ok, 1 an error
    reply or no reply) and the JSON to print, the runtime's reply, or ``{"ok": false, "error": ...}``
    where none came. ``model``: the bundle of ``load-model``, read (and refused when it is none)
    before anything is sent. ``timeout_s``: as :class:`ControlClient`'s (None: its defaults).

    Raises:
        ValueError: for a command not in :data:`CLI_COMMANDS` (listing them), a ``load-model``
            without ``model``, or a ``model`` that is no bundle (BundleError).
    """
    if command not in CLI_COMMANDS:
        raise ValueError(f"unknown control command {command!r}; valid: {list(CLI_COMMANDS)}")
    if (command == "load-model") != (model is not None):
        raise ValueError("load-model takes the bundle directory to upload; status and shutdown take none")
    bundle = read_bundle(Path(model)) if model is not None else None
    client = ControlClient(endpoint, timeout_s=timeout_s, keys=keys)
    try:
        reply = client.load_model(bundle) if bundle is not None else client.request(CLI_COMMANDS[command])
    except ControlError as exc:
        return 1, exc.reply if exc.reply is not None else {"ok": False, "error": str(exc)}
    finally:
        client.close()
    return 0, reply
