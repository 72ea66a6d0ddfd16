"""An endpoint the runtime cannot bind (already in use, malformed) is a clear error naming the
setting, the address and the reason, not a ZMQError traceback; and what was bound before it is
released, so that a corrected start can bind it at once."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import zmq

from runtime import config
from runtime.server import Runtime, Settings

REPO = Path(__file__).resolve().parents[2]


def _endpoints() -> dict[str, str]:
    short = Path(tempfile.mkdtemp(prefix="ep-", dir="/tmp"))  # ipc paths are limited to ~100 characters
    return {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}


def _port_in_use(ctx: zmq.Context) -> tuple[zmq.Socket, str]:
    """A TCP address bound by a socket of ``ctx`` (an ipc address is taken over by a second bind, not refused)."""
    holder = ctx.socket(zmq.PULL)
    holder.bind("tcp://127.0.0.1:*")
    return holder, holder.getsockopt(zmq.LAST_ENDPOINT).decode()


def test_an_endpoint_in_use_is_a_value_error_naming_it_and_frees_the_others(brightness_bundle: Path) -> None:
    ctx = zmq.Context()
    holder, taken = _port_in_use(ctx)
    try:
        endpoints = {**_endpoints(), "results": taken}
        settings = Settings.from_config(config.defaults(), device="CPU", **endpoints)
        with pytest.raises(ValueError, match=rf"\[endpoints\] results \(--results\) '{taken}' cannot be bound: "
                                             r"Address already in use"):
            Runtime(settings, model=brightness_bundle)
        # The tiles socket bound before the failure was closed: its address is free again.
        sock = ctx.socket(zmq.ROUTER)
        try:
            sock.bind(endpoints["tiles"])
        finally:
            sock.close(linger=0)
    finally:
        holder.close(linger=0)
        ctx.term()


def test_a_malformed_endpoint_is_a_value_error_naming_it() -> None:
    endpoints = {**_endpoints(), "control": "bogus://nowhere"}
    # refused before ZeroMQ is asked (runtime.config.check_endpoint; it answered "Protocol not supported")
    with pytest.raises(ValueError, match=r"\[endpoints\] control \(--control\) 'bogus://nowhere' is not a ZeroMQ "
                                         r"endpoint; give TRANSPORT://ADDRESS .* e\.g\. tcp://127\.0\.0\.1:5552"):
        Runtime(Settings.from_config(config.defaults(), device="CPU", **endpoints))


def test_serve_says_error_and_exits_2_on_an_endpoint_in_use(brightness_bundle: Path) -> None:
    ctx = zmq.Context()
    holder, taken = _port_in_use(ctx)
    try:
        endpoints = {**_endpoints(), "results": taken}
        cmd = [sys.executable, "-m", "runtime", "serve", "--device", "CPU", "--model", str(brightness_bundle),
               *sum(([f"--{name}", address] for name, address in endpoints.items()), [])]
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        holder.close(linger=0)
        ctx.term()
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (f"error: [endpoints] results (--results) '{taken}' cannot be "
                                                   "bound: Address already in use")
