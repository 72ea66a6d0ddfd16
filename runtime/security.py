"""CURVE authentication and encryption for the runtime's sockets (ZeroMQ's CurveZMQ + ZAP).

With keys configured the control socket (and, if asked, the data sockets) accepts only clients
whose public key is in the authorised directory; everything on them is encrypted. Keys are ZeroMQ
certificate files made by ``python -m runtime keys``. Without keys nothing is authenticated, so the
default endpoints bind loopback only.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.base import Authenticator
from zmq.utils import z85

SERVER_NAME = "server"


#: What a client's name may be: it becomes the file names ``NAME.key`` and ``NAME.key_secret``.
_KEY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def refuse_overwrite(paths: list[Path]) -> None:
    """Raise ValueError naming the key files of ``paths`` that exist: a new pair over a deployed one
    locks out every payload or ground station that holds the old public key, so it is never silent."""
    there = [str(p) for p in paths if os.path.lexists(p)]  # a dangling symlink too: a key written through it
    if there:
        raise ValueError(f"key files exist already: {', '.join(there)}; remove them first, or write the new keys to "
                         "another --out (payloads and ground stations hold the old public keys)")


def curve_key_files(out: str | Path, clients: list[str]) -> list[Path]:
    """The key files :func:`make_keys` writes for ``clients`` into ``out``, the names checked first.

    Raises:
        ValueError: for client names that repeat, are empty, are the server's, or are no file name
            of ``out`` (``../x`` would write outside it, ``.x`` a hidden file).
    """
    out = Path(out)
    if not clients or len(set(clients)) != len(clients) or SERVER_NAME in clients:
        raise ValueError(f"client names must be distinct, non-empty and not {SERVER_NAME!r}: {clients}")
    bad = [c for c in clients if not _KEY_NAME.fullmatch(c)]
    if bad:
        raise ValueError(f"client names {bad}: each must be letters, digits, '_', '-' or '.', not starting with '.'")
    return [*(out / f"{n}.{ext}" for n in (SERVER_NAME, *clients) for ext in ("key", "key_secret")),
            *(out / "authorized" / f"{n}.key" for n in clients)]


def make_keys(out: str | Path, clients: list[str]) -> dict[str, Path]:
    """Write a server key pair and one pair per client name into ``out``; returns the secret files.

    ``out/authorized/`` receives the clients' public keys: point the runtime at it. Existing key
    files are never overwritten (:func:`refuse_overwrite`).
    """
    out = Path(out)
    refuse_overwrite(curve_key_files(out, clients))
    (out / "authorized").mkdir(parents=True, exist_ok=True)
    made = {}
    # pyzmq writes the files with a plain open(): under umask 077 the secret ones are never readable by
    # others, not even for a moment (they were 0644 under the usual umask); public keys are then opened up
    mask = os.umask(0o077)
    try:
        for name in (SERVER_NAME, *clients):
            public, secret = zmq.auth.create_certificates(out, name)
            made[name] = Path(secret)
            os.chmod(public, 0o644)
            if name != SERVER_NAME:
                copy = out / "authorized" / Path(public).name
                copy.write_bytes(Path(public).read_bytes())
                os.chmod(copy, 0o644)
    finally:
        os.umask(mask)
    return made


def _curve_key(path: str | Path, key: bytes | None, what: str) -> bytes:
    """``key`` (Z85 text from ``path``) if it is a 32-byte CURVE key; else ValueError naming the file.

    Why: a truncated or edited key loads from its file as any text, and libzmq refuses it only when
    it is set on a socket, as a bare ``ZMQError: Invalid argument`` with no file named (a serve
    traceback; flightsim blamed its endpoint)."""
    try:
        good = key is not None and len(z85.decode(key)) == 32
    except (ValueError, KeyError):  # a length not a multiple of 5, a character outside Z85
        good = False
    if not good:
        raise ValueError(f"{path}: its {what} is not a 40-character Z85 CURVE key (python -m runtime keys makes them)")
    return key  # type: ignore[return-value]


def _load_authorized(authorized: Path) -> None:
    """Check every ``*.key`` in ``authorized`` as the ZAP authenticator will load it.

    Why: pyzmq's ``configure_curve`` logs a file it cannot read and then trusts no key at all, so one
    stray or truncated file locked every ground station out of a payload that started as if well."""
    for path in sorted(authorized.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a CURVE public key file of --curve-authorized ({exc})") from None
        _curve_key(path, public, "public-key")


@dataclass(frozen=True)
class ClientKeys:
    """What a client needs: its own key pair and the server's public key."""

    public: bytes
    secret: bytes
    server_public: bytes

    @classmethod
    def from_files(cls, client_secret: str | Path, server_public: str | Path) -> ClientKeys:
        public, secret = zmq.auth.load_certificate(client_secret)
        server, _ = zmq.auth.load_certificate(server_public)
        if secret is None:
            raise ValueError(f"{client_secret}: not a secret key file (it holds no secret-key)")
        return cls(_curve_key(client_secret, public, "public-key"), _curve_key(client_secret, secret, "secret-key"),
                   _curve_key(server_public, server, "public-key"))

    @classmethod
    def from_dir(cls, keys: str | Path, name: str) -> ClientKeys:
        keys = Path(keys)
        return cls.from_files(keys / f"{name}.key_secret", keys / f"{SERVER_NAME}.key")

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client; call before connect."""
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server_public


class CurveServer:
    """The runtime's side: a ZAP authenticator that admits only the authorised public keys.

    pyzmq's :class:`~zmq.auth.base.Authenticator` decides; a thread of ours serves its ZAP socket
    with bounded polls. pyzmq's ThreadAuthenticator is not used: it waits on sockets made outside
    its event loop through an asyncio poller, a pattern that can miss a wake-up (pyzmq#1558), and
    its ``stop`` joins with no timeout, so one missed TERMINATE hangs whoever stops it.
    """

    POLL_MS = 100  # how soon the ZAP thread sees a stop

    def __init__(self, context: zmq.Context, server_secret: str | Path, authorized: str | Path):
        server_secret, authorized = Path(server_secret), Path(authorized)
        if not server_secret.is_file():
            raise ValueError(f"{server_secret}: no such server secret key file")
        if not authorized.is_dir():
            raise ValueError(f"{authorized}: no such directory of authorised client public keys")
        self.public, self.secret = zmq.auth.load_certificate(server_secret)
        if self.secret is None:
            raise ValueError(f"{server_secret}: not a secret key file")
        _curve_key(server_secret, self.public, "public-key")
        _curve_key(server_secret, self.secret, "secret-key")
        _load_authorized(authorized)
        self._auth = Authenticator(context)
        self._auth.configure_curve(domain="*", location=str(authorized))
        self._auth.start()  # binds the context's ZAP endpoint before any CURVE socket binds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="zap", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        zap, loop = self._auth.zap_socket, asyncio.new_event_loop()
        try:
            while not self._stop.is_set():
                if zap.poll(self.POLL_MS):
                    self._answer(zap, loop, zap.recv_multipart())
        finally:
            loop.close()
            self._auth.stop()  # the ZAP socket is closed by the thread that used it

    def _answer(self, zap: zmq.Socket, loop: asyncio.AbstractEventLoop, request: list[bytes]) -> None:
        # handle_zap_message is a coroutine only to await a credentials callback (we configure
        # none); it replies on the ZAP socket before it returns.
        try:
            loop.run_until_complete(self._auth.handle_zap_message(request))
        except Exception as exc:  # noqa: BLE001 - deny and go on: a dead handler would close the
            # ZAP socket, and with none bound libzmq lets every CURVE client through
            request_id = request[1] if len(request) > 1 else b""
            try:
                zap.send_multipart([b"1.0", request_id, b"500", str(exc).encode()[:200], b"", b""])
            except zmq.ZMQError:
                pass  # it had replied before it failed

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE server; call before bind."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the ZAP thread. Call after the CURVE sockets are closed: with no ZAP handler,
        libzmq lets any CURVE client through."""
        self._stop.set()
        self._thread.join(timeout_s)
