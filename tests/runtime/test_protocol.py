"""The wire protocol on its own: frames in, frames out, and every refusal has its reason."""

from __future__ import annotations

import json

import numpy as np
import pytest

from runtime import protocol
from runtime.protocol import Reason, TileHeader, TileRejected


def _tile(dtype: str = "uint16") -> tuple[TileHeader, np.ndarray]:
    pixels = np.arange(2 * 5 * 7, dtype=dtype).reshape(2, 5, 7)
    header = TileHeader(scene_id="s", tile_id="s/0", seq=0, shape=(0, 0, 0), dtype="", checksum="",
                        transform=(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0), crs="EPSG:32631",
                        window=(0, 0, 5, 7))
    return header, pixels


@pytest.mark.parametrize("dtype", protocol.TILE_DTYPES)
def test_tile_round_trip(dtype: str) -> None:
    header, pixels = _tile(dtype)
    frames = protocol.encode_tile(header, pixels)
    got_header, got = protocol.decode_tile(frames, max_pixels=10_000, max_bands=4, max_header_bytes=1 << 16)
    np.testing.assert_array_equal(got, pixels)
    assert got.dtype == pixels.dtype
    assert got_header["tile_id"] == "s/0" and got_header["shape"] == [2, 5, 7]
    assert got_header["transform"][2] == 500000.0 and got_header["crs"] == "EPSG:32631"


def test_want_done_is_on_the_wire_only_when_false() -> None:
    """A sender that never resends says so; every other header is the bytes it was before."""
    header, pixels = _tile()
    default = json.loads(protocol.encode_tile(header, pixels)[0])
    assert "want_done" not in default and protocol.wants_done(default)
    header.want_done = False
    waived = json.loads(protocol.encode_tile(header, pixels)[0])
    assert waived["want_done"] is False and not protocol.wants_done(waived)
    frames = protocol.encode_tile(header, pixels)
    assert protocol.decode_tile(frames, max_pixels=10_000, max_bands=4,
                                 max_header_bytes=1 << 16)[0]["want_done"] is False
    assert _reason(_with_header(frames, want_done="no")).reason is Reason.BAD_HEADER


def test_result_round_trip_with_mask() -> None:
    mask = np.eye(4, dtype=np.uint8)
    frames = protocol.encode_result({"tile_id": "t", "status": "ok"}, mask)
    result, got = protocol.decode_result(frames)
    assert result["status"] == "ok" and result["v"] == protocol.PROTOCOL_VERSION
    np.testing.assert_array_equal(got, mask)


def _reason(frames: list[bytes], **limits: int) -> TileRejected:
    with pytest.raises(TileRejected) as info:
        protocol.decode_tile(frames, limits.get("max_pixels", 10_000), limits.get("max_bands", 4),
                             limits.get("max_header_bytes", 1 << 16))
    return info.value


def _with_header(frames: list[bytes], **changes: object) -> list[bytes]:
    header = json.loads(frames[0])
    header.update(changes)
    return [json.dumps(header).encode(), frames[1]]


def test_each_malformation_has_its_reason() -> None:
    frames = protocol.encode_tile(*_tile())
    assert _reason([frames[0]]).reason is Reason.BAD_FRAMES
    assert _reason([b"{not json", frames[1]]).reason is Reason.BAD_HEADER
    assert _reason([b"[1, 2]", frames[1]]).reason is Reason.BAD_HEADER
    assert _reason(_with_header(frames, v=99)).reason is Reason.UNKNOWN_VERSION
    assert _reason(_with_header(frames, seq="0")).reason is Reason.BAD_HEADER
    assert _reason(_with_header(frames, shape=[2, -5, 7])).reason is Reason.BAD_HEADER
    assert _reason(_with_header(frames, dtype="float32")).reason is Reason.UNSUPPORTED_DTYPE
    assert _reason(frames, max_pixels=10).reason is Reason.TOO_LARGE
    assert _reason([frames[0], frames[1][:-2]]).reason is Reason.WRONG_BYTE_COUNT
    flipped = bytearray(frames[1])
    flipped[3] ^= 0xFF
    rej = _reason([frames[0], bytes(flipped)])
    assert rej.reason is Reason.BAD_CHECKSUM
    assert rej.header["tile_id"] == "s/0"  # a rejection still names its tile


def test_nan_is_not_json() -> None:
    with pytest.raises(ValueError):
        protocol.dumps({"x": float("nan")})


def test_a_deeply_nested_header_is_a_bad_header_not_an_internal_error() -> None:
    """Adversarial test (issue 13): 100,000 nested arrays made json raise RecursionError."""
    frames = protocol.encode_tile(*_tile())
    deep = b"[" * 100_000 + b"]" * 100_000
    rej = _reason([deep, frames[1]], max_header_bytes=1 << 20)  # 200 kB: the nesting, not the size, is refused
    assert rej.reason is Reason.BAD_HEADER and "nested" in rej.detail
    with pytest.raises(ValueError, match="nested"):
        protocol.loads(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)


@pytest.mark.parametrize("value", [1e308, -1e13])
def test_extreme_transform_is_a_bad_header(value: float) -> None:
    """Adversarial test (issue 13): a transform of 1e308 passed the finiteness check and failed
    later as inference_failed."""
    frames = protocol.encode_tile(*_tile())
    transform = [value, 0.0, 500000.0, 0.0, -3.0, 4200000.0]
    rej = _reason(_with_header(frames, transform=transform))
    assert rej.reason is Reason.BAD_HEADER and "transform" in rej.detail


@pytest.mark.parametrize("field", ["scene_id", "tile_id", "checksum"])
def test_an_id_that_is_not_utf8_is_a_bad_header_that_still_names_its_tile(field: str) -> None:
    """Review: a lone UTF-16 surrogate (JSON ``"\\ud800"``) is a valid JSON string but no UTF-8 text;
    accepted, it killed the thread that sends results when its "done" was encoded."""
    frames = protocol.encode_tile(*_tile())
    bad = _with_header(frames, **{field: "s/\ud800"})  # json.dumps writes it as the escape "\ud800"
    assert b"\\ud800" in bad[0]
    rej = _reason(bad)
    assert rej.reason is Reason.BAD_HEADER and field in rej.detail and "UTF-8" in rej.detail
    assert protocol.tile_ids(rej.header)["seq"] == 0  # the rejection still echoes what it can
    assert json.loads(protocol.encode_ack(rej.header, False, rej.reason))["status"] == "rejected"


@pytest.mark.parametrize("changes", [{"time": 10**400}, {"time": -(10**400)},
                                     {"transform": [10**400, 0, 500000, 0, -3, 4200000]},
                                     {"transform": [3, 0, -(10**400), 0, -3, 4200000]}])
def test_a_number_too_large_for_a_float_is_a_bad_header_with_the_tiles_ids(changes: dict) -> None:
    """Review: 10**400 is valid JSON; math.isfinite raised OverflowError on it, which the runtime
    took for a bug of its own and answered with null ids (a resending sender never heard back)."""
    frames = protocol.encode_tile(*_tile())
    rej = _reason(_with_header(frames, **changes))
    assert rej.reason is Reason.BAD_HEADER and next(iter(changes)) in rej.detail
    assert rej.header["tile_id"] == "s/0"


@pytest.mark.parametrize("frames", [
    [],
    [protocol.dumps({"v": 1, "mask": {"dtype": "uint8"}}), b"\0" * 4],        # no shape: was KeyError
    [protocol.dumps({"v": 1, "mask": [2, 2]}), b"\0" * 4],                    # not a description: TypeError
    [protocol.dumps({"v": 1, "mask": {"shape": "2x2"}}), b"\0" * 4],
    [protocol.dumps({"v": 1, "mask": {"shape": [2, None]}}), b"\0" * 4],
    [protocol.dumps({"v": 1, "mask": {"shape": [3, 3]}}), b"\0" * 4],         # the frame is too short
    [protocol.dumps({"v": 1, "mask": {"shape": [2, 2], "dtype": "float32"}}), b"\0" * 4],
])
def test_a_malformed_result_raises_value_error_naming_the_problem(frames: list[bytes]) -> None:
    """Whoever reads results catches ValueError to drop one bad result: nothing else may escape."""
    with pytest.raises(ValueError, match="result"):
        protocol.decode_result(frames)


def test_a_tile_of_exactly_the_pixel_and_band_limits_is_accepted() -> None:
    """``max_tile_pixels`` and ``max_tile_bands`` are the largest tile taken, not the first refused."""
    frames = protocol.encode_tile(*_tile())
    _, pixels = protocol.decode_tile(frames, max_pixels=5 * 7, max_bands=2, max_header_bytes=1 << 16)
    assert pixels.shape == (2, 5, 7)
    assert _reason(frames, max_pixels=5 * 7 - 1).reason is Reason.TOO_LARGE
