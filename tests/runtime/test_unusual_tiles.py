"""Adversarial review: tiles that are legal or nearly legal but unusual, sent to a real runtime
(real sockets, a real compiled IR). Each must get exactly one answer, and the right one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime import protocol
from runtime.server import Runtime
from tests.runtime.test_server import Ground


def _frames(pixels: np.ndarray, **fields: object) -> list[bytes]:
    data = np.ascontiguousarray(pixels).tobytes()
    header = {"v": 1, "type": "tile", "scene_id": "s", "tile_id": "t", "seq": 0, "shape": list(pixels.shape),
              "dtype": pixels.dtype.name, "checksum": protocol.checksum(data), **fields}
    return [json.dumps(header).encode(), data]


def _ship() -> np.ndarray:
    pixels = np.zeros((3, 64, 64), np.uint8)
    pixels[:, 10:20, 5:45] = 255  # one bright 40 x 10 pixel "ship", east-west
    return pixels


#: One ground per runtime for a whole test: a ground closed after one tile may still be connected
#: as the runtime sends the next result, which its PUSH socket can deal to it, and a rejection is
#: sent once (it is held for no ground), so it would be lost with the closed ground.
_GROUNDS: dict[str, Ground] = {}


@pytest.fixture(autouse=True)
def _close_grounds():
    yield
    while _GROUNDS:
        ground = _GROUNDS.popitem()[1]
        ground.sock.close()
        if ground.acks is not None:
            ground.acks.close()


def _send(runtime: Runtime, frames: list[bytes]) -> tuple[dict, dict]:
    """(the ack, the result) of one tile message."""
    ground = _GROUNDS.get(runtime.endpoints["results"])
    if ground is None:
        ground = _GROUNDS[runtime.endpoints["results"]] = Ground(runtime.endpoints)
    return ground.exchange(runtime.endpoints["tiles"], frames)


@pytest.mark.parametrize("field", ["seq", "window"])
def test_a_400_digit_integer_is_a_bad_header_in_every_field(running_runtime: Runtime, field: str) -> None:
    """docs/protocol.md: "like every number in the header it must be finite and fit a double (JSON's
    1e400 or a 400-digit integer is bad_header)". seq and window took any integer, and every ack,
    result and done echoed it to grounds whose JSON readers keep numbers in doubles."""
    huge = 10 ** 400
    value = huge if field == "seq" else [huge, 0, 64, 64]
    ack, result = _send(running_runtime, _frames(_ship(), tile_id=f"huge-{field}", **{field: value}))
    assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), ack
    assert result["reason"] == "bad_header"


@pytest.mark.parametrize("transform", [
    [0.0, 0.0, 500000.0, 0.0, 0.0, 4200000.0],   # every pixel on one point
    [3.0, 3.0, 500000.0, 3.0, 3.0, 4200000.0],   # every pixel on one line
])
def test_a_singular_transform_is_a_bad_header(running_runtime: Runtime, transform: list[float]) -> None:
    """A transform with determinant 0 maps the tile onto a point or a line: no pixel has a place
    on the map. It was accepted, and the 40 x 10 pixel ship came back as a vessel of area 0 m2
    (length 0, width 0 for the first, 0 m2 and 0 width for the second): a wrong answer, not a refusal."""
    ack, result = _send(running_runtime, _frames(_ship(), tile_id="singular", crs="EPSG:32631",
                                                 transform=transform))
    assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), (ack, result)
    assert "transform" in result["detail"]


@pytest.mark.parametrize("crs", ["IAU_2015:49900", "IAU_2015:30100"])  # Mars, the Moon
def test_a_geographic_crs_of_another_body_is_refused_whether_or_not_it_holds_vessels(
        running_runtime: Runtime, crs: str) -> None:
    """The off-the-Earth bug again, by CRS rather than by corners: a geographic CRS of Mars passes
    the latitude/longitude check, and the tile was ok when empty and inference_failed (PROJ finds no
    operation to the WGS 84 transverse Mercator each vessel is measured in) when it held a vessel."""
    transform = [1e-4, 0.0, 10.0, 0.0, -1e-4, 50.0]
    answers = []
    for name, pixels in (("vessel", _ship()), ("empty", np.zeros((3, 64, 64), np.uint8))):
        ack, result = _send(running_runtime, _frames(pixels, tile_id=f"{crs}/{name}", crs=crs, transform=transform))
        answers.append((ack["status"], ack["reason"], result["status"], result["reason"]))
    assert answers == [("rejected", "bad_header", "rejected", "bad_header")] * 2, answers


def test_a_geographic_crs_in_grads_is_measured_from_true_north(running_runtime: Runtime) -> None:
    """EPSG:4807 (NTF Paris) counts longitude from Paris in grads. Its coordinates were taken for
    WGS 84 degrees from Greenwich when choosing the meridian of the measuring transverse Mercator,
    so an east-west ship came back heading 92.2 degrees, not 90 (the same ship in EPSG:4326: 90.0),
    and a tile above 81 degrees north (90 grads) was refused as off the Earth."""
    transform = [1e-4, 0.0, 50.0, 0.0, -1e-4, 60.0]  # 60 grads north = 54 degrees, 50 grads east of Paris
    ack, result = _send(running_runtime, _frames(_ship(), tile_id="grads", crs="EPSG:4807", transform=transform))
    assert result["status"] == "ok", result
    [vessel] = result["detections"]["features"]
    assert vessel["properties"]["heading_deg"] == pytest.approx(90.0, abs=0.05)
    # 95 grads north is 85.5 degrees: on the Earth
    far_north = [1e-4, 0.0, 50.0, 0.0, -1e-4, 95.0]
    ack, result = _send(running_runtime, _frames(_ship(), tile_id="grads-north", crs="EPSG:4807",
                                                 transform=far_north))
    assert result["status"] == "ok", result


@pytest.fixture()
def rgb_runtime(tmp_path, ipc_endpoints):
    """A runtime serving the brightness model with its bands named red, green, blue."""
    from runtime import config
    from runtime.bundle import write_bundle
    from runtime.server import Settings
    from tests.conftest import make_brightness_bundle, runtime_thread

    plain = make_brightness_bundle(tmp_path / "plain")
    manifest = {k: v for k, v in plain.manifest.items() if k not in ("files", "format")}
    manifest["input"] = {**manifest["input"], "bands": ["red", "green", "blue"]}
    write_bundle(tmp_path / "rgb", plain.files["model.xml"], plain.files["model.bin"], manifest)
    with runtime_thread(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints),
                        tmp_path / "rgb") as runtime:
        yield runtime


def test_a_tile_naming_the_models_bands_in_another_order_is_refused(rgb_runtime: Runtime) -> None:
    """The model takes red, green, blue; a tile that says its bands are blue, green, red was served
    as if they were red, green, blue: a wrong answer the runtime had the words to avoid. A tile
    naming them in the model's order (in any case), or naming other bands (a repeated grey band:
    runtime.bands), is served as before."""
    ack, result = _send(rgb_runtime, _frames(_ship(), tile_id="bgr", bands=["blue", "green", "red"]))
    assert (ack["status"], result["reason"]) == ("rejected", "bad_shape"), result
    for i, names in enumerate((["Red", "Green", "Blue"], ["grey", "grey", "grey"])):
        ack, result = _send(rgb_runtime, _frames(_ship(), tile_id=f"ok{i}", bands=names))
        assert result["status"] == "ok", result


def test_the_rig_reorders_a_scene_whose_bands_name_the_models_in_another_order(tmp_path) -> None:
    """A BGR GeoTIFF (band descriptions blue, green, red) into a model that takes red, green, blue:
    the runtime refuses tiles naming the model's bands in another order, so the rig's band rule
    (runtime.bands.adapt_bands, also runtime infer's) reorders them by name instead of sending them
    as they are, and every tile is served, each band where the model wants it."""
    import rasterio

    import hil
    from runtime.bands import adapt_bands
    from runtime.bundle import write_bundle
    from tests.conftest import make_brightness_bundle

    assert adapt_bands(["Blue", "green", "red"], ["red", "green", "blue"])[0] == [2, 1, 0]
    assert adapt_bands(["red", "green", "blue"], ["red", "green", "blue"])[0] is None
    plain = make_brightness_bundle(tmp_path / "plain")
    manifest = {k: v for k, v in plain.manifest.items() if k not in ("files", "format")}
    manifest["input"] = {**manifest["input"], "bands": ["red", "green", "blue"]}
    write_bundle(tmp_path / "rgb", plain.files["model.xml"], plain.files["model.bin"], manifest)
    with rasterio.open(tmp_path / "bgr.tif", "w", driver="GTiff", height=128, width=128, count=3, dtype="uint8") as dst:
        dst.write(np.stack([_ship().repeat(2, axis=1).repeat(2, axis=2)[0]] * 3))
        dst.descriptions = ("blue", "green", "red")
    report = hil.run(tmp_path / "bgr.tif", tmp_path / "rgb", tmp_path / "out", device="CPU").report
    assert report["tiles_processed"] == report["tiles_sent"] == 4, report


@pytest.mark.parametrize("fields, words", [({"type": "result"}, "type"), ({"bands": [1, {}, None]}, "bands")])
def test_a_header_field_of_the_wrong_kind_is_a_bad_header(running_runtime: Runtime, fields: dict,
                                                          words: str) -> None:
    """docs/protocol.md: ``type`` is "tile" and ``bands`` a list of names. A message of another type
    was served as a tile, and bands that are not names were taken."""
    ack, result = _send(running_runtime, _frames(_ship(), tile_id=f"kind-{words}", **fields))
    assert (ack["status"], ack["reason"]) == ("rejected", "bad_header"), ack
    assert words in result["detail"]


def test_a_rejection_does_not_echo_a_megabyte_field(running_runtime: Runtime) -> None:
    """A rejection's detail quotes what it refuses: a dtype of a million characters came back whole
    in the rejection result (and its event), a megabyte on the downlink for one refused tile. (A header
    is now at most [limits] max_header_bytes, 64 KiB: the field is the most that fits, 30 times the cap.)"""
    from runtime.protocol import MAX_DETAIL_CHARS

    header, pixels = _frames(_ship(), tile_id="huge-dtype")
    huge = json.dumps({**json.loads(header), "dtype": "x" * 60_000}).encode()
    ack, result = _send(running_runtime, [huge, pixels])
    assert result["reason"] == "unsupported_dtype", result["reason"]
    assert len(result["detail"]) < MAX_DETAIL_CHARS + 100
