"""CURVE on the control channel: with keys configured, only authorised clients command the payload."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import zmq

from runtime import config
from runtime.client import ControlClient, ControlError
from runtime.security import ClientKeys, CurveServer, make_keys
from runtime.server import Runtime, Settings
from tests.conftest import make_brightness_bundle, wait_until_dropped


@pytest.mark.slow
def test_only_authorised_clients_can_load_a_model(tmp_path: Path, brightness_bundle: Path,
                                                  ipc_endpoints: dict[str, str]) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, ["ground"])
    make_keys(tmp_path / "other", ["intruder"])  # a valid key pair the runtime does not know
    settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints,
                                    curve_server_secret=str(keys / "server.key_secret"),
                                    curve_authorized=str(keys / "authorized"))
    runtime = Runtime(settings, model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    new = make_brightness_bundle(tmp_path / "new", name="new")
    try:
        # "could not send": the refusal came before the request went (a busy host's pause
        # between connecting and sending); a plain send then blocked for ever.
        with pytest.raises(ControlError, match="no reply|could not send"):
            ControlClient(ipc_endpoints["control"], timeout_s=2).load_model(new)
        intruder = ClientKeys.from_files(tmp_path / "other" / "intruder.key_secret", keys / "server.key")
        with pytest.raises(ControlError, match="no reply|could not send"):
            ControlClient(ipc_endpoints["control"], timeout_s=2, keys=intruder).load_model(new)
        refused = ControlClient(ipc_endpoints["control"], timeout_s=2, keys=intruder)
        # As a pause between connecting and sending would let it, the refusal drops the connection.
        assert wait_until_dropped(refused._sock), "a refused handshake left the connection"
        with pytest.raises(ControlError, match="could not send"):
            refused.status()
        ground = ControlClient(ipc_endpoints["control"], keys=ClientKeys.from_dir(keys, "ground"))
        assert ground.status()["model"]["name"] == "brightness"
        assert ground.load_model(new)["model"]["name"] == "new"
    finally:
        runtime.stop()
        thread.join(30)


def test_keys_command_and_half_configured_curve_is_an_error(tmp_path: Path, ipc_endpoints: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "runtime", "keys", "--out", str(tmp_path / "k")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k" / "server.key_secret").is_file() and (tmp_path / "k" / "authorized" / "ground.key").is_file()
    settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints,
                                    curve_server_secret=str(tmp_path / "k" / "server.key_secret"))
    with pytest.raises(ValueError, match="both"):
        Runtime(settings)


def test_curve_on_the_data_channels_admits_only_authorised_senders_readers_and_listeners(
        tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> None:
    """curve_channels = all four: a tile sender, a results reader and a telemetry subscriber
    without the server's trust get nothing through; with their keys everything works."""

    from flightsim.streamer import LinkError, Streamer
    from hil.collector import ResultCollector
    from tests.runtime.test_server import _tile

    keys = tmp_path / "keys"
    make_keys(keys, ["ground"])
    make_keys(tmp_path / "other", ["intruder"])
    settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints,
                                    curve_server_secret=str(keys / "server.key_secret"),
                                    curve_authorized=str(keys / "authorized"),
                                    curve_channels=("control", "tiles", "results", "telemetry"))
    runtime = Runtime(settings, model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    ground = ClientKeys.from_dir(keys, "ground")
    intruder = ClientKeys.from_files(tmp_path / "other" / "intruder.key_secret", keys / "server.key")
    try:
        for who in (None, intruder):
            refused = Streamer(ipc_endpoints["tiles"], ack_timeout_s=1.5, keys=who)
            # The first tile is queued on the new connection and dropped with it, or, where the
            # refusal came before the send (a busy host), cannot be sent at all: a plain send
            # then blocked for ever, the likeliest way this test once hung CI.
            with pytest.raises(LinkError, match="no acknowledgement|nothing could be sent"):
                refused.stream([_tile(0)])
            # The refused handshake has dropped the connection by now, so a send has nowhere to
            # go; or, on a host busy enough, ZeroMQ has already reconnected and the tile waits on
            # a handshake that is refused again. Either way nothing is received (asserted below).
            with pytest.raises(LinkError, match="no acknowledgement|nothing could be sent"):
                refused.stream([_tile(1)])
            refused.close()
        assert runtime.status()["counters"]["tiles_received"] == 0
        strangers = [ResultCollector(ipc_endpoints["results"], keys=who) for who in (None, intruder)]
        listener = zmq.Context.instance().socket(zmq.SUB)
        listener.setsockopt(zmq.SUBSCRIBE, b"")
        listener.connect(ipc_endpoints["telemetry"])
        reader = ResultCollector(ipc_endpoints["results"], keys=ground, acks=ipc_endpoints["acks"])
        log = Streamer(ipc_endpoints["tiles"], keys=ground).stream([_tile(i) for i in range(3)])
        assert all(a["status"] == "accepted" for a in log.acks.values())
        assert reader.wait_for(3, 20) and all(r["status"] == "ok" for _, r, _ in reader.results)
        subscribed = zmq.Context.instance().socket(zmq.SUB)
        subscribed.setsockopt(zmq.SUBSCRIBE, b"telemetry")
        ground.apply(subscribed)
        subscribed.connect(ipc_endpoints["telemetry"])
        assert subscribed.poll(5000), "an authorised subscriber gets telemetry"
        assert all(not c.results for c in strangers) and not listener.poll(100)
        for sock in (listener, subscribed):
            sock.close(0)
        for c in (*strangers, reader):
            c.close()
    finally:
        runtime.stop()
        thread.join(30)


def test_curve_channels_must_name_sockets_and_keep_control(tmp_path: Path, ipc_endpoints: dict[str, str]) -> None:
    make_keys(tmp_path / "k", ["ground"])
    # ("control", "video") used to be told it must include 'control', which it does
    for channels, said in ((("tiles",), "must include 'control'"), (("control", "video"), r"unknown channel\(s\) \['video'\]")):
        settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints,
                                        curve_server_secret=str(tmp_path / "k" / "server.key_secret"),
                                        curve_authorized=str(tmp_path / "k" / "authorized"), curve_channels=channels)
        with pytest.raises(ValueError, match=said):
            Runtime(settings)


def test_with_an_uplink_key_only_models_signed_by_the_ground_are_installed(
        tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> None:
    """Unsigned, signed by another key, or altered after signing: refused with the reason and the
    old model keeps serving; signed by the ground: installed, and the store keeps the signature."""
    import json
    import shutil

    from runtime.bundle import read_bundle
    from runtime.signing import make_signing_keys, sign_bundle_dir

    keys = tmp_path / "keys"
    proc = subprocess.run([sys.executable, "-m", "runtime", "keys", "--out", str(keys), "--signing"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    secret, public = keys / "uplink.signing.pem", keys / "uplink.verify.pem"
    other_secret, _ = make_signing_keys(tmp_path / "other")
    first = tmp_path / "first"
    shutil.copytree(brightness_bundle, first)
    sign_bundle_dir(first, secret)
    settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints, uplink_public_key=str(public))
    with pytest.raises(ValueError, match="unsigned"):
        Runtime(settings, model=brightness_bundle)  # at start too: whichever way a model comes
    runtime = Runtime(settings, model=first)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    client = ControlClient(ipc_endpoints["control"])
    try:
        new = tmp_path / "new"
        make_brightness_bundle(new, name="new")

        def refusal(bundle: object) -> str:
            with pytest.raises(ControlError) as err:
                client.load_model(bundle)  # type: ignore[arg-type]
            assert client.status()["model"]["name"] == "brightness"  # the old model keeps serving
            return str(err.value)

        assert "unsigned" in refusal(new)
        subprocess.run([sys.executable, "-m", "runtime", "sign", "--model", str(new), "--key", str(other_secret)],
                       check=True, capture_output=True)
        assert "not by the ground key" in refusal(new)
        sign_bundle_dir(new, secret)
        forged = read_bundle(new)
        record = json.loads(forged.signature)
        record["signature"] = "00" * 64
        assert "does not verify" in refusal(type(forged)(forged.manifest, forged.files, forged.manifest_bytes,
                                                         signature=json.dumps(record).encode()))
        reply = client.load_model(new)
        assert reply["ok"] and reply["model"]["name"] == "new", reply
        assert read_bundle(runtime.store.current_path()).signature == (new / "signature.json").read_bytes()
    finally:
        client.close()
        runtime.stop()
        thread.join(30)


def test_the_rig_signs_what_it_uplinks_when_given_the_key(tmp_path: Path, brightness_bundle: Path,
                                                          ipc_endpoints: dict[str, str]) -> None:
    """hil run --signing-key against a runtime that takes only signed models."""
    import hil
    from runtime.signing import make_signing_keys
    from tests.hil.test_rig import _write_scene

    secret, public = make_signing_keys(tmp_path / "k")
    scene, truth = _write_scene(tmp_path)
    settings = Settings.from_config(config.defaults(), device="CPU", uplink_public_key=str(public), **ipc_endpoints)
    runtime = Runtime(settings)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(ControlError, match="unsigned"):
            hil.run(scene, brightness_bundle, tmp_path / "a", truth=truth, runtime=runtime.endpoints["control"])
        r = hil.run(scene, brightness_bundle, tmp_path / "b", truth=truth, runtime=runtime.endpoints["control"],
                    signing_key=secret).report
        assert r["tiles_processed"] == r["tiles_sent"] > 0 and r["model"]["name"] == "brightness"
    finally:
        runtime.stop()
        thread.join(30)


def test_a_zap_request_the_authenticator_fails_on_is_denied_and_the_gate_stays_shut(tmp_path: Path) -> None:
    """With no ZAP handler bound libzmq admits every CURVE client, so a failure inside the
    authenticator must deny that one request and leave the handler serving."""
    keys = tmp_path / "keys"
    make_keys(keys, ["ground"])
    make_keys(tmp_path / "other", ["intruder"])
    short = Path(tempfile.mkdtemp(prefix="zap-", dir="/tmp"))
    ctx = zmq.Context()
    curve = CurveServer(ctx, keys / "server.key_secret", keys / "authorized")
    decide = curve._auth.handle_zap_message
    calls: list[bytes] = []

    async def failing_once(request: list[bytes]) -> None:
        calls.append(request[1])
        if len(calls) == 1:
            raise RuntimeError("an authenticator that fails")
        await decide(request)

    curve._auth.handle_zap_message = failing_once  # type: ignore[method-assign]
    server = ctx.socket(zmq.PULL)
    curve.apply(server)
    server.bind(f"ipc://{short}/in")
    clients = []

    def send_as(who: ClientKeys, message: bytes) -> None:
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        # a bounded wait, not NOBLOCK: on a loaded host the first send once found no pipe yet
        # (EAGAIN, a clean-clone CI run beside another); what is asserted is what the server gets
        sock.setsockopt(zmq.SNDTIMEO, 5000)
        who.apply(sock)
        sock.connect(f"ipc://{short}/in")
        sock.send(message)
        clients.append(sock)

    try:
        send_as(ClientKeys.from_dir(keys, "ground"), b"failed")  # the authenticator fails on this one
        assert not server.poll(1500)
        send_as(ClientKeys.from_files(tmp_path / "other" / "intruder.key_secret", keys / "server.key"), b"intruder")
        assert not server.poll(1500), "after a failure the gate let an unauthorised client through"
        send_as(ClientKeys.from_dir(keys, "ground"), b"ground")
        assert server.poll(5000) and server.recv() == b"ground"
        assert len(calls) == 3
    finally:
        for sock in (*clients, server):
            sock.close(0)
        curve.stop()
        ctx.term()
