"""Malformed tiles and commands, by kind: the fuzz test and the fuzz campaign draw from here."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from runtime import protocol
from runtime.protocol import TileHeader


def valid_tile(rng: np.random.Generator, seq: int, tile_id: str | None = None) -> list[bytes]:
    bands, h, w = 3, int(rng.integers(1, 65)), int(rng.integers(1, 65))
    pixels = rng.integers(0, 256, (bands, h, w), dtype=np.uint8)
    # Ids are unique: the runtime treats a repeated (scene_id, tile_id) as a resend, not a new tile.
    header = TileHeader(scene_id="fuzz", tile_id=tile_id or f"fuzz/{seq}/{int(rng.integers(1 << 62))}", seq=seq, shape=(0, 0, 0), dtype="", checksum="",
                        transform=(3.0, 0.0, 5e5, 0.0, -3.0, 4.2e6), crs="EPSG:32631", window=(0, 0, h, w))
    return protocol.encode_tile(header, pixels)


def _header(frames: list[bytes]) -> dict:
    return json.loads(frames[0])


def _with(frames: list[bytes], **changes: object) -> list[bytes]:
    header = {**_header(frames), **changes}
    return [json.dumps(header).encode(), frames[1]]


def _random_json(rng: np.random.Generator) -> object:
    choices = [None, True, -1, 0, 2**63, 1e308, -0.0, "", "x" * int(rng.integers(0, 300)), [], {}, [1, 2, 3],
               {"a": [None]}, [-5, 0, 7], "EPSG:99999", "NaN"]
    return choices[int(rng.integers(len(choices)))]


def _flip(data: bytes, rng: np.random.Generator, n: int, distinct: bool = False) -> bytes:
    """``data`` with ``n`` random bits flipped. ``distinct``: a bit drawn again stays flipped (the same
    draws, so the same stream of random numbers), so the result always differs from ``data``: a
    second flip of the same bit gave back a valid tile, which the campaign must then not expect
    rejected."""
    buf = bytearray(data)
    flipped: set[tuple[int, int]] = set()
    for _ in range(n):
        i = int(rng.integers(len(buf)))
        bit = int(rng.integers(8))
        if distinct and (i, bit) in flipped:
            continue
        flipped.add((i, bit))
        buf[i] ^= 1 << bit
    return bytes(buf)


FIELDS = ("v", "scene_id", "tile_id", "seq", "shape", "dtype", "checksum", "transform", "crs", "window",
          "time", "want_mask", "bands")

#: kind -> a function making one malformed tile message of that kind.
TILE_KINDS: dict[str, Callable[[np.random.Generator, int], list[bytes]]] = {
    "random_bytes": lambda rng, i: [rng.bytes(int(rng.integers(0, 200))) for _ in range(int(rng.integers(1, 5)))],
    "header_bit_flips": lambda rng, i: (lambda f: [_flip(f[0], rng, int(rng.integers(1, 8))), f[1]])(valid_tile(rng, i)),
    "pixel_bit_flips": lambda rng, i: (lambda f: [f[0], _flip(f[1], rng, int(rng.integers(1, 8)), True)])(valid_tile(rng, i)),
    "truncated_pixels": lambda rng, i: (lambda f: [f[0], f[1][: int(rng.integers(0, len(f[1])))]])(valid_tile(rng, i)),
    "extra_bytes": lambda rng, i: (lambda f: [f[0], f[1] + rng.bytes(int(rng.integers(1, 64)))])(valid_tile(rng, i)),
    "missing_frame": lambda rng, i: valid_tile(rng, i)[:1],
    "extra_frame": lambda rng, i: valid_tile(rng, i) + [b"extra"],
    "required_field_removed": lambda rng, i: (lambda f, gone: [json.dumps({k: v for k, v in _header(f).items()
                                                                     if k != gone}).encode(), f[1]])(valid_tile(rng, i), FIELDS[int(rng.integers(1, 7))]),
    "field_wrong_type": lambda rng, i: _with(valid_tile(rng, i), **{FIELDS[int(rng.integers(len(FIELDS)))]: _random_json(rng)}),
    "unknown_version": lambda rng, i: _with(valid_tile(rng, i), v=int(rng.integers(2, 1000))),
    "huge_shape": lambda rng, i: _with(valid_tile(rng, i), shape=[3, 100000, 100000]),
    "float_pixels": lambda rng, i: _with(valid_tile(rng, i), dtype="float32"),
    "nan_inf_in_header": lambda rng, i: [json.dumps({**_header(valid_tile(rng, i)),
                                                     "transform": [float("nan"), 0, 0, 0, float("inf"), 0]}).encode(), b""],
    "wrong_band_count": lambda rng, i: (lambda f: _with(f, shape=[1, _header(f)["shape"][1] * 3, _header(f)["shape"][2]]))(valid_tile(rng, i)),
    "not_an_object": lambda rng, i: [json.dumps(_random_json(rng)).encode(), b"\x00" * 12],
    # issue 13's adversarial cases
    "deep_nesting": lambda rng, i: [b'{"v": 1, "scene_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                    valid_tile(rng, i)[1]],
    "long_ids": lambda rng, i: _with(valid_tile(rng, i), tile_id="x" * int(rng.integers(1025, 5000))),
    "extreme_numbers": lambda rng, i: _with(valid_tile(rng, i), transform=[1e308, 0, 0, 0, -1e308, 0]),
    "same_name_scene": lambda rng, i: valid_tile(rng, i, tile_id="same-name/0"),
}

#: kind -> a malformed control message (frames after the REQ envelope).
CONTROL_KINDS: dict[str, Callable[[np.random.Generator], list[bytes]]] = {
    "random_bytes": lambda rng: [rng.bytes(int(rng.integers(1, 200)))],
    "not_an_object": lambda rng: [json.dumps(_random_json(rng)).encode()],
    "unknown_command": lambda rng: [json.dumps({"v": 1, "cmd": "x" * int(rng.integers(1, 20))}).encode()],
    "wrong_version": lambda rng: [json.dumps({"v": int(rng.integers(2, 99)), "cmd": "status"}).encode()],
    "load_model_garbage": lambda rng: [json.dumps({"v": 1, "cmd": "load_model"}).encode(),
                                       *(rng.bytes(int(rng.integers(0, 300))) for _ in range(int(rng.integers(0, 5))))],
    "load_model_bad_sha": lambda rng: [json.dumps({"v": 1, "cmd": "load_model", "manifest_sha256": _random_json(rng)}).encode(),
                                       b"{}", b"<net/>", b""],
    "many_frames": lambda rng: [json.dumps({"v": 1, "cmd": "status"}).encode(), *([b"x" * 1000] * int(rng.integers(40, 200)))],
    "deep_nesting": lambda rng: [b'{"v": 1, "cmd": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
}
