"""Adversarial review 21 of tile ingest and the control channel: well-formed messages that say odd
things, sent through the real sockets of a real runtime serving a real IR on the CPU."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from runtime import config, protocol
from runtime.bundle import write_bundle
from runtime.client import ControlClient, ControlError
from runtime.server import Runtime, Settings
from tests.conftest import make_brightness_bundle, runtime_thread
from tests.runtime.test_server import Ground


def _frames(pixels: np.ndarray, **fields: object) -> list[bytes]:
    """A well-formed tile message of ``pixels`` whose header carries ``fields`` besides its own."""
    data = np.ascontiguousarray(pixels).tobytes()
    header = {"v": 1, "type": "tile", "scene_id": "s", "tile_id": "t", "seq": 0, "shape": list(pixels.shape),
              "dtype": pixels.dtype.name, "checksum": protocol.checksum(data), **fields}
    return [json.dumps(header).encode(), data]


#: The shipped [limits] max_header_bytes (checked against defaults.toml by the tests that use it).
HEADER_LIMIT = 65536


def _ship() -> np.ndarray:
    """Three bands, one bright 40 x 10 pixel "ship": the brightness model finds it."""
    pixels = np.zeros((3, 64, 64), np.uint8)
    pixels[:, 10:20, 5:45] = 255
    return pixels


@pytest.fixture()
def rgb_runtime(tmp_path: Path, ipc_endpoints: dict[str, str]) -> Iterator[tuple[Runtime, Ground]]:
    """A runtime serving the brightness model with its bands named red, green, blue, and one ground
    for the whole test (a rejection is sent once: a ground closed early could miss it)."""
    plain = make_brightness_bundle(tmp_path / "plain")
    manifest = {k: v for k, v in plain.manifest.items() if k not in ("files", "format")}
    manifest["input"] = {**manifest["input"], "bands": ["red", "green", "blue"]}
    write_bundle(tmp_path / "rgb", plain.files["model.xml"], plain.files["model.bin"], manifest)
    with runtime_thread(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints),
                        tmp_path / "rgb") as runtime:
        ground = Ground(runtime.endpoints)
        try:
            yield runtime, ground
        finally:
            ground.sock.close()
            if ground.acks is not None:
                ground.acks.close()


def _send(served: tuple[Runtime, Ground], frames: list[bytes]) -> tuple[dict, dict]:
    """(the ack, the result) of one tile message."""
    runtime, ground = served
    return ground.exchange(runtime.endpoints["tiles"], frames)


@pytest.mark.parametrize("names", [["blue", "green", "red", "nir"], ["blue", "green"]])
def test_a_tile_naming_another_number_of_bands_than_it_carries_is_refused(rgb_runtime: tuple[Runtime, Ground],
                                                                            names: list[str]) -> None:
    """A 3-band tile whose header names 4 (or 2) bands: which name is which band is unknown, and the
    band-order check compared equal-length lists only, so blue, green, red, nir went to the red,
    green, blue model as they were (its blue into the model's red): served ok, silently wrong.
    Unnamed bands (an empty list) are still served."""
    ack, result = _send(rgb_runtime, _frames(_ship(), tile_id=f"named-{len(names)}", bands=names))
    assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), (ack, result)
    assert f"bands names {len(names)} bands" in result["detail"] and "has 3" in result["detail"]
    ack, result = _send(rgb_runtime, _frames(_ship(), tile_id="unnamed", bands=[]))
    assert (ack["status"], result["status"]) == ("accepted", "ok"), result


def test_a_header_over_the_limit_is_refused_unparsed_and_the_payload_serves_on(
        rgb_runtime: tuple[Runtime, Ground]) -> None:
    """A well-formed header padded past [limits] max_header_bytes: parsing JSON takes up to 23 bytes of
    memory per byte ([{},{},...]: 30 MB became 700 MB), and an accepted tile keeps its header until its
    result leaves, so 64 tiles inside of 256 MiB headers could take the payload's memory many times
    over. It was accepted; it is now refused as bad_header, counted, and the next tile is served."""
    runtime, _ = rgb_runtime
    limit = HEADER_LIMIT
    header, pixels = _frames(_ship(), tile_id="padded", pad=[{}] * (limit // 3))
    assert len(header) > limit
    ack, result = _send(rgb_runtime, [header, pixels])
    assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), (ack, result)
    assert "max_header_bytes" in result["detail"] and result["tile_id"] is None  # never parsed
    just_under = _frames(_ship(), tile_id="under", pad="x" * (limit - 400))
    assert len(just_under[0]) <= limit
    ack, result = _send(rgb_runtime, just_under)
    assert (ack["status"], result["status"]) == ("accepted", "ok"), result
    counters = runtime.status()["counters"]
    assert counters["rejected_by_reason"] == {"bad_header": 1} and counters["tiles_ok"] == 1, counters
    assert runtime.settings.max_header_bytes == config.defaults()["limits"]["max_header_bytes"] == HEADER_LIMIT


def test_a_command_over_the_header_limit_is_refused_and_control_serves_on(
        rgb_runtime: tuple[Runtime, Ground]) -> None:
    """A status command whose JSON frame is padded past [limits] max_header_bytes: parsed, it cost the
    main loop (tiles, control, telemetry) the same 23 bytes of memory per byte as a tile's header.
    It is refused with an error naming the limit, and the next command is answered."""
    runtime, _ = rgb_runtime
    client = ControlClient(runtime.endpoints["control"], timeout_s=20)
    try:
        with pytest.raises(ControlError, match="max_header_bytes") as err:
            client.request("status", pad=[{}] * (HEADER_LIMIT // 3))
        assert err.value.reply is not None and err.value.reply["ok"] is False
        assert client.status()["state"] == "serving"
    finally:
        client.close()
