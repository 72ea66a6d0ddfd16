"""Fuzzing the tile decoder and the control channel: every input is answered, nothing crashes."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import config, protocol
from runtime.protocol import TileRejected
from runtime.server import Runtime, Settings

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from malformed import FIELDS, valid_tile  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=0, max_size=4))
def test_decoder_answers_arbitrary_frames_with_a_reason(frames: list[bytes]) -> None:
    try:
        protocol.decode_tile(frames, 4096 * 4096, 16, 1 << 16)
    except TileRejected as rej:
        assert rej.reason in protocol.Reason and rej.detail
        protocol.dumps(protocol.tile_ids(rej.header))  # echoable as it stands


@settings(max_examples=600, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSON, seed=st.integers(0, 2**32 - 1))
def test_decoder_on_mutated_headers(field: str, value: object, seed: int) -> None:
    frames = valid_tile(np.random.default_rng(seed), 0)
    header = json.loads(frames[0])
    header[field] = value
    try:
        mutated = json.dumps(header).encode()
    except ValueError:
        return
    try:
        got_header, pixels = protocol.decode_tile([mutated, frames[1]], 4096 * 4096, 16, 1 << 16)
    except TileRejected as rej:
        assert rej.detail
        return
    # Accepted: then it really is a consistent tile.
    assert pixels.shape == tuple(got_header["shape"]) and got_header["v"] == protocol.PROTOCOL_VERSION


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, str]]:
    """A runtime without a model: the control channel is what is fuzzed (load_model included)."""
    short = tempfile.mkdtemp(prefix="fz-", dir="/tmp")
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", **endpoints))
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    yield endpoints
    runtime.stop()
    thread.join(30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()), min_size=1, max_size=4))
def test_control_channel_answers_everything(served: dict[str, str], frames: list[bytes]) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(served["control"])
    try:
        sock.send_multipart(frames)
        assert sock.poll(10_000), "no reply"
        reply = protocol.loads(sock.recv())
        assert reply["v"] == protocol.PROTOCOL_VERSION and isinstance(reply["ok"], bool)
        if not reply["ok"]:
            assert reply["error"]
    finally:
        sock.close()


def test_campaign_script_through_a_runtime_process() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "fuzz_campaign.py"), "--per-kind", "10"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ("crashes 0, lost 0, answered twice 0, answers to no tile 0, rejected without reason 0, "
            "unexpected outcomes 0, commands not refused 0, control timeouts 0; valid tile afterwards: ok"
            ) in proc.stdout
