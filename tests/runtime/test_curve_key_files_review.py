"""CURVE key files that cannot work are refused when loaded, naming the file (a security review)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runtime import config
from runtime.security import ClientKeys, make_keys
from runtime.server import Runtime, Settings


def _truncate(src: Path, dst: Path, field: str) -> Path:
    """``src`` with ``field``'s key cut to three characters: a file an editor or a bad copy broke."""
    dst.write_text(re.sub(rf'{field} = ".*"', f'{field} = "abc"', src.read_text()))
    return dst


def test_a_truncated_server_secret_key_is_a_clear_error_not_a_zmq_traceback(
        tmp_path: Path, ipc_endpoints: dict[str, str]) -> None:
    """libzmq refused the key only when it was set on a socket: ``ZMQError: Invalid argument``
    from inside Runtime(), no file named, the ZAP thread left running."""
    made = make_keys(tmp_path / "keys", ["ground"])
    short = _truncate(made["server"], tmp_path / "short.key_secret", "secret-key")
    before = {t.ident for t in threading.enumerate()}
    settings = Settings.from_config(config.defaults(), device="CPU", curve_server_secret=str(short),
                                    curve_authorized=str(tmp_path / "keys" / "authorized"), **ipc_endpoints)
    with pytest.raises(ValueError, match="short.key_secret: its secret-key is not a 40-character Z85 CURVE key"):
        Runtime(settings)
    assert [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()] == []


def test_a_bad_file_among_the_authorised_keys_is_refused_rather_than_locking_every_client_out(
        tmp_path: Path, ipc_endpoints: dict[str, str]) -> None:
    """pyzmq's authenticator logs a *.key it cannot read and then trusts no key at all: the runtime
    started, said ready, and refused the ground's valid key on every command."""
    made = make_keys(tmp_path / "keys", ["ground"])
    authorized = tmp_path / "keys" / "authorized"
    (authorized / "stray.key").write_text("half a copy\n")
    settings = Settings.from_config(config.defaults(), device="CPU", curve_server_secret=str(made["server"]),
                                    curve_authorized=str(authorized), **ipc_endpoints)
    with pytest.raises(ValueError, match="stray.key: not a CURVE public key file of --curve-authorized"):
        Runtime(settings)
    (authorized / "stray.key").unlink()
    _truncate(authorized / "ground.key", authorized / "bad.key", "public-key")
    with pytest.raises(ValueError, match="bad.key: its public-key is not a 40-character Z85 CURVE key"):
        Runtime(settings)


def test_a_truncated_client_key_names_its_file(tmp_path: Path) -> None:
    """flightsim stream --keys with such a key said ``error: tcp://...: Invalid argument``."""
    make_keys(tmp_path / "keys", ["ground"])
    short = _truncate(tmp_path / "keys" / "ground.key_secret", tmp_path / "ground.key_secret", "secret-key")
    with pytest.raises(ValueError, match="ground.key_secret: its secret-key is not"):
        ClientKeys.from_files(short, tmp_path / "keys" / "server.key")


def test_curve_channels_without_keys_is_an_error_not_an_open_runtime(ipc_endpoints: dict[str, str]) -> None:
    """``serve --curve-channels control,tiles`` without keys served every socket open, silently
    (in a process of its own: there it served on until killed)."""
    endpoints = [arg for name, address in ipc_endpoints.items() for arg in (f"--{name}", address)]
    proc = subprocess.run([sys.executable, "-m", "runtime", "serve", "--device", "CPU", *endpoints,
                           "--curve-channels", "control,tiles"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stdout
    assert "error: --curve-channels control,tiles: CURVE needs --curve-server-secret" in proc.stderr
