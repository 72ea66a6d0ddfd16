"""The runtime driven through its ports: real ZeroMQ sockets, a real compiled IR."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zmq
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import protocol
from runtime.bundle import read_bundle
from runtime.client import ControlClient, ControlError
from runtime.server import Runtime
from tests.conftest import make_brightness_bundle

TRANSFORM = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)


def _tile(seq: int, pixels: np.ndarray | None = None) -> Tile:
    if pixels is None:
        pixels = np.zeros((3, 64, 64), dtype=np.uint8)
        pixels[:, 10:20, 5:45] = 255  # one bright 40 x 10 pixel "ship", east-west
    return Tile("scene", f"scene/{seq}", seq, pixels, TRANSFORM, "EPSG:32631", (0, 0, *pixels.shape[1:]))


class Ground:
    """The receiving end: a PULL on the results socket, acknowledging each result on the runtime's
    acks socket when it has one (``[delivery] ground_ack``, the default)."""

    def __init__(self, endpoints: dict[str, str]):
        self.sock = zmq.Context.instance().socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoints["results"])
        self.acks = None
        if "acks" in endpoints:
            self.acks = zmq.Context.instance().socket(zmq.PUSH)
            self.acks.setsockopt(zmq.LINGER, 1000)
            self.acks.connect(endpoints["acks"])

    def results(self, n: int, timeout_s: float = 20.0) -> list[dict]:
        out = []
        for _ in range(n):
            assert self.sock.poll(int(timeout_s * 1000)), f"only {len(out)} of {n} results arrived"
            result = protocol.decode_result(self.sock.recv_multipart())[0]
            if self.acks is not None and result.get("tile_id") is not None:
                key = [result["scene_id"], result["tile_id"], result.get("checksum")]
                self.acks.send(protocol.dumps({"v": protocol.PROTOCOL_VERSION, "ack": key}))
            out.append(result)
        return out

    def exchange(self, tiles: str, frames: list[bytes]) -> tuple[dict, dict]:
        """(the ack, the result) of one tile message sent raw to the runtime's ``tiles`` endpoint."""
        sender = zmq.Context.instance().socket(zmq.DEALER)
        sender.setsockopt(zmq.LINGER, 0)
        sender.connect(tiles)
        try:
            sender.send_multipart(frames)
            assert sender.poll(10_000), "no ack"
            ack = protocol.loads(sender.recv())
            [result] = self.results(1)
        finally:
            sender.close()
        return ack, result


def test_a_tile_becomes_a_described_vessel(running_runtime: Runtime) -> None:
    ground = Ground(running_runtime.endpoints)
    streamer = Streamer(running_runtime.endpoints["tiles"])
    log = streamer.stream([_tile(0)])
    assert log.acks["scene/0"]["status"] == "accepted"
    [result] = ground.results(1)
    assert result["status"] == "ok" and result["tile_id"] == "scene/0"
    [vessel] = result["detections"]["features"]
    props = vessel["properties"]
    assert props["area_m2"] == pytest.approx(40 * 10 * 9)
    assert props["length_m"] == pytest.approx(120) and props["width_m"] == pytest.approx(30)
    assert props["heading_deg"] == pytest.approx(90)
    xs = [c[0] for c in vessel["geometry"]["coordinates"][0]]
    assert min(xs) == pytest.approx(500000 + 5 * 3) and max(xs) == pytest.approx(500000 + 45 * 3)
    assert result["model"]["sha256"] == read_bundle(running_runtime.store.current_path()).id


def test_malformed_tiles_are_rejected_and_serving_goes_on(running_runtime: Runtime) -> None:
    ground = Ground(running_runtime.endpoints)
    streamer = Streamer(running_runtime.endpoints["tiles"])
    good = _tile(0).frames()
    header = json.loads(good[0])
    flipped = bytearray(good[1])
    flipped[100] ^= 0xFF
    cases = {
        "bad_header": [b"\xff not json", good[1]],
        "wrong_byte_count": [good[0], good[1][:-1]],
        "bad_checksum": [good[0], bytes(flipped)],
        "unknown_version": [json.dumps({**header, "v": 2}).encode(), good[1]],
        "bad_shape": _tile(5, np.zeros((2, 64, 64), np.uint8)).frames(),
    }
    for i, frames in enumerate(cases.values()):
        streamer.send_frames(f"bad/{i}", frames)
    streamer.send_frames("scene/9", _tile(9).frames())
    streamer.drain()
    results = ground.results(len(cases) + 1)
    rejected = sorted(r["reason"] for r in results if r["status"] == "rejected")
    assert rejected == sorted(cases)
    assert all(r.get("detail") for r in results if r["status"] == "rejected")
    [ok] = [r for r in results if r["status"] == "ok"]
    assert ok["tile_id"] == "scene/9" and len(ok["detections"]["features"]) == 1
    status = ControlClient(running_runtime.endpoints["control"]).status()
    counters = status["counters"]
    assert counters["tiles_rejected"] == len(cases) and counters["tiles_ok"] == 1
    if Path("/proc/self/task").is_dir():  # the runtime's host CPU, thread by thread
        assert {"sender", "health", "native", "zmq"} <= set(status["host_cpu_s"])
        assert any(name.startswith("vectorise-") for name in status["host_cpu_s"])


def test_padded_edge_tile_and_mask_frame(running_runtime: Runtime) -> None:
    ground = Ground(running_runtime.endpoints)
    pixels = np.zeros((3, 30, 50), dtype=np.uint8)
    pixels[:, 2:6, 10:30] = 255
    Streamer(running_runtime.endpoints["tiles"]).stream([_tile(1, pixels)], want_mask=True)
    assert ground.sock.poll(20000), "no result in 20 s"
    result, mask = protocol.decode_result(ground.sock.recv_multipart())
    assert mask is not None and mask.shape == (30, 50)
    assert mask.sum() == 4 * 20 and mask[2:6, 10:30].all()


def test_a_load_model_signature_that_is_not_text_is_refused_saying_so(running_runtime: Runtime, tmp_path: Path) -> None:
    """``signature`` is the signature.json text (docs/protocol.md). Sent as anything else (the parsed
    JSON object), it was dropped without a word: a payload with a ground key answered "the bundle is
    unsigned", one without installed the model without its signature, refused at the first start
    after a key is configured."""
    control = ControlClient(running_runtime.endpoints["control"])
    before = control.status()["model"]
    bundle = make_brightness_bundle(tmp_path / "other", name="other")
    with pytest.raises(ControlError, match="signature.*text.*got dict"):
        control.request("load_model", bundle.frames(), manifest_sha256=bundle.id,
                        signature={"algorithm": "ed25519", "signature": "00"})
    assert control.status()["model"] == before
    assert control.load_model(bundle)["model"]["name"] == "other"  # no signature at all: as before


def test_bad_bundle_is_refused_and_old_model_keeps_serving(running_runtime: Runtime, tmp_path: Path) -> None:
    control = ControlClient(running_runtime.endpoints["control"])
    before = control.status()["model"]
    bundle = make_brightness_bundle(tmp_path / "other", name="other")
    frames = bundle.frames()
    tampered = bytearray(frames[2])
    tampered[-1] ^= 0x01
    with pytest.raises(ControlError, match="sha256"):
        control.request("load_model", [frames[0], frames[1], bytes(tampered)], manifest_sha256=bundle.id)
    with pytest.raises(ControlError, match="manifest sha256"):
        control.request("load_model", frames, manifest_sha256="0" * 64)
    broken_xml = make_brightness_bundle(tmp_path / "broken", name="broken")
    from runtime.bundle import write_bundle
    broken = write_bundle(tmp_path / "broken2", b"<net>not an IR</net>", broken_xml.files["model.bin"],
                          {k: v for k, v in broken_xml.manifest.items() if k not in ("files", "format")})
    with pytest.raises(ControlError, match="model refused"):
        control.load_model(broken)
    assert control.status()["model"] == before
    ground = Ground(running_runtime.endpoints)
    Streamer(running_runtime.endpoints["tiles"]).stream([_tile(2)])
    [result] = ground.results(1)
    assert result["status"] == "ok" and result["model"] == before
    # A good upload replaces it, and the old one is kept for rollback.
    assert control.load_model(bundle)["model"]["sha256"] == bundle.id
    assert read_bundle(running_runtime.store.previous_path()).id == before["sha256"]


def test_no_model_rejects_with_reason(ipc_endpoints: dict[str, str]) -> None:
    import threading

    from runtime import config
    from runtime.server import Settings

    runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints))
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        ground = Ground(runtime.endpoints)
        log = Streamer(runtime.endpoints["tiles"]).stream([_tile(0)])
        assert log.acks["scene/0"]["reason"] == "no_model"
        assert ground.results(1)[0]["reason"] == "no_model"
    finally:
        ControlClient(runtime.endpoints["control"]).shutdown()
        thread.join(10)


@pytest.mark.parametrize(("transform", "words"), [
    ((1.0, 0.0, 10.0, 0.0, -1.0, 100.0), "latitude"),      # north of the pole
    ((1e-4, 0.0, 10.0, 0.0, 1e-4, -90.001), "latitude"),   # just south of it
    ((1e-4, 0.0, 300.0, 0.0, -1e-4, 10.0), "longitude"),   # no UTM zone can measure it
])
def test_a_geographic_tile_off_the_earth_is_refused_whether_or_not_it_holds_vessels(
        running_runtime: Runtime, transform: tuple[float, ...], words: str) -> None:
    """Review: a tile in EPSG:4326 at latitude 100 was accepted, then failed as inference_failed
    ("PROJ: utm: Invalid latitude") only if it held a vessel. Now both are bad headers up front."""
    ground = Ground(running_runtime.endpoints)
    sender = zmq.Context.instance().socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(running_runtime.endpoints["tiles"])
    with_vessel, empty = _tile(0), _tile(1, np.zeros((3, 64, 64), np.uint8))
    for tile in (with_vessel, empty):
        tile.transform, tile.crs = Affine(*transform), "EPSG:4326"
        sender.send_multipart(tile.frames())
        assert sender.poll(10_000)
        ack = protocol.loads(sender.recv())
        assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), ack
    results = ground.results(2)
    assert all(r["reason"] == "bad_header" and words in r["detail"] for r in results), results
    sender.close()


def test_a_geographic_tile_on_the_earth_is_measured_in_metres(running_runtime: Runtime) -> None:
    """The check above refuses nothing real: a tile at 60 degrees north touching the antimeridian."""
    ground = Ground(running_runtime.endpoints)
    tile = _tile(0)
    tile.transform, tile.crs = Affine(1e-4, 0.0, 180.0 - 64e-4, 0.0, -1e-4, 60.0), "EPSG:4326"
    log = Streamer(running_runtime.endpoints["tiles"]).stream([tile])
    assert log.acks["scene/0"]["status"] == "accepted"
    [result] = ground.results(1)
    assert result["status"] == "ok", result
    [vessel] = result["detections"]["features"]
    assert vessel["properties"]["units"] == "m" and vessel["properties"]["length_m"] > 0


def test_an_uplink_waits_for_the_load_as_long_as_a_runtime_allows_it(running_runtime: Runtime, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A compile on a stick can outlast a command's reply timeout (30 s): the client said "no reply" for a
    model the runtime went on to install. A load is now waited for [health] load_timeout_s by default;
    here the command timeout is cut to 1 ms so that any real load outlasts it."""
    import runtime.client as client_module

    monkeypatch.setattr(client_module, "DEFAULT_TIMEOUT_S", 0.001)
    make_brightness_bundle(tmp_path / "slow", name="slow")
    assert ControlClient(running_runtime.endpoints["control"]).load_model(tmp_path / "slow")["model"]["name"] == "slow"
    with pytest.raises(ControlError, match="no reply to 'load_model'|could not send 'load_model'"):  # the caller's
        ControlClient(running_runtime.endpoints["control"], timeout_s=0.001).load_model(tmp_path / "slow")


def test_the_last_tile_of_a_pass_is_not_held_for_a_batch(brightness_bundle: Path,
                                                          ipc_endpoints: dict[str, str]) -> None:
    """Tiles coming fast enough to fill a vectorise batch make a worker wait for one; the pass's last
    tile must not wait for tiles that are not coming (its result used to wait out ``batch_wait_ms``, here
    ten minutes). The runtime tells the workers how many tiles are still on the device."""
    from runtime import config
    from runtime.settings import Settings
    from tests.conftest import runtime_thread

    cfg = config.defaults()
    cfg["vectorize"].update(batch=8, batch_wait_ms=600_000)
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle) as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"])
        try:
            streamer.stream([_tile(i) for i in range(8)])  # back to back: the pace now fills a batch in time
            assert [r["status"] for r in ground.results(8, timeout_s=60)] == ["ok"] * 8
            streamer.stream([_tile(8)])  # the last: nothing behind it on the device
            [last] = ground.results(1, timeout_s=60)
            assert last["tile_id"] == "scene/8" and last["status"] == "ok"
        finally:
            streamer.close()
