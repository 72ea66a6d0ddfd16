"""The wire protocol between a tile sender, the runtime, and a result consumer (docs/protocol.md).

Every message is a ZeroMQ multipart message whose first frame is a UTF-8 JSON header; binary
payloads (pixels, masks, model files) ride in the frames after it. Nothing is pickled: a header that
is not JSON, or that does not match the schema below, is refused with a reason code.

Length: just over 400 lines, kept in one module because it is the wire format, one spec
(docs/protocol.md) on both ends: the tile, result, ack and done messages, their encoders and the
tile decoder's checks, which the runtime, flightsim, hil and the fuzz scripts all share.
"""

from __future__ import annotations

import enum
import json
import math
import zlib
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

#: Version of this protocol. A message with any other ``v`` is refused with ``unknown_version``.
PROTOCOL_VERSION = 1

#: Pixel data types a tile may carry: raw sensor counts.
TILE_DTYPES = ("uint8", "uint16")


class Reason(str, enum.Enum):
    """Why a tile was rejected. Every rejection carries one of these codes."""

    BAD_FRAMES = "bad_frames"              # not [header, pixels]
    BAD_HEADER = "bad_header"              # not JSON, or a field missing or of the wrong type
    UNKNOWN_VERSION = "unknown_version"    # header ``v`` is not PROTOCOL_VERSION
    UNSUPPORTED_DTYPE = "unsupported_dtype"
    TOO_LARGE = "too_large"                # more pixels or bands than the runtime accepts
    WRONG_BYTE_COUNT = "wrong_byte_count"  # pixel frame length does not match shape and dtype
    BAD_CHECKSUM = "bad_checksum"          # pixel frame does not match the header's checksum
    BAD_SHAPE = "bad_shape"                # bands or size the serving model cannot take
    NO_MODEL = "no_model"                  # no flight model is loaded
    INFERENCE_FAILED = "inference_failed"  # the device raised; the tile was not processed
    INTERNAL_ERROR = "internal_error"      # the runtime met a bug on this tile (an event is raised)
    MODEL_MISMATCH = "model_mismatch"      # strict_fit: the scene is not what the model was trained for


#: Characters of a rejection's detail that are sent: a detail quotes what it refuses, and a header
#: field of megabytes would otherwise come back whole in the rejection and its event.
MAX_DETAIL_CHARS = 2000


class TileRejected(Exception):
    """A tile could not be accepted; carries the reason code and whatever ids could be read."""

    def __init__(self, reason: Reason, detail: str, header: dict[str, Any] | None = None):
        if len(detail) > MAX_DETAIL_CHARS:
            detail = f"{detail[:MAX_DETAIL_CHARS]}... ({len(detail)} characters in all)"
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.header = header or {}


def checksum(data: bytes | memoryview) -> str:
    """CRC-32 of a frame, as the header writes it: a link-integrity check, not a signature."""
    return f"crc32:{zlib.crc32(data) & 0xFFFFFFFF:08x}"


def dumps(obj: Any) -> bytes:
    """Encode a header frame."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


def loads(frame: bytes) -> Any:
    """Decode a header frame; raises ValueError on anything that is not UTF-8 JSON."""
    try:
        return json.loads(bytes(frame).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"header is not UTF-8 JSON: {exc}") from None
    except RecursionError:  # e.g. 100,000 nested arrays: a malformed header, not a crash
        raise ValueError("header is nested too deeply to be a header") from None


@dataclass
class TileHeader:
    """Everything the runtime needs to process a tile and to place its vessels on the Earth.

    ``transform`` is the affine pixel-to-map transform as rasterio's ``Affine`` coefficients
    ``(a, b, c, d, e, f)``; ``crs`` is anything ``rasterio.crs.CRS.from_user_input`` accepts (an
    ``EPSG:`` code or WKT), or None for an image without georeferencing (units are then pixels).
    ``window`` is ``(row_off, col_off, height, width)`` of the tile in its scene, for stitching.
    """

    scene_id: str
    tile_id: str
    seq: int
    shape: tuple[int, int, int]  # bands, height, width
    dtype: str
    checksum: str
    transform: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    crs: str | None = None
    bands: list[str] = field(default_factory=list)
    time: float = 0.0
    window: tuple[int, int, int, int] | None = None
    want_mask: bool = False
    modality: str | None = None  # "optical" or "sar" when the sender knows (runtime/fit.py)
    #: False: the sender never resends, so it is not told "done" (one message less per tile)
    want_done: bool = True
    v: int = PROTOCOL_VERSION
    type: str = "tile"

    def to_json(self) -> dict[str, Any]:
        # Shallow: json encodes the tuples and lists as they are; asdict's deep copy of each was
        # most of the sender's per-tile cost beside the checksum.
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["modality"] is None:  # optional on the wire: absent, not null
            del out["modality"]
        if out["want_done"]:  # the default: absent, so that the header is what it was before
            del out["want_done"]
        return out


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "scene_id": str,
    "tile_id": str,
    "seq": int,
    "shape": list,
    "dtype": str,
    "checksum": str,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "transform": list,
    "crs": (str, type(None)),
    "bands": list,
    "time": (int, float),
    "window": (list, type(None)),
    "want_mask": bool,
    "want_done": bool,
    "type": str,
    "modality": str,  # "optical" or "sar" (runtime.fit.MODALITIES): checked against the model
}


def encode_tile(header: TileHeader, pixels: np.ndarray) -> list[bytes]:
    """Frames for one tile. ``pixels`` is (bands, height, width); it is sent little-endian, C order."""
    if pixels.ndim != 3:
        raise ValueError(f"pixels must be (bands, height, width), got shape {pixels.shape}")
    if pixels.dtype.name not in TILE_DTYPES:
        raise ValueError(f"pixel dtype {pixels.dtype} not supported; valid: {TILE_DTYPES}")
    data = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    header.shape = tuple(int(s) for s in pixels.shape)  # type: ignore[assignment]
    header.dtype = pixels.dtype.name
    header.checksum = checksum(data)
    return [dumps(header.to_json()), data]


def decode_tile(
    frames: list[bytes] | list[memoryview], max_pixels: int, max_bands: int, max_header_bytes: int
) -> tuple[dict[str, Any], np.ndarray]:
    """Validate a tile message and return its header and a (bands, height, width) array.

    ``max_header_bytes`` bounds the header frame before it is parsed (``[limits] max_header_bytes``):
    parsing takes up to 23 bytes of memory per byte of JSON, and an accepted tile keeps its header.

    Raises:
        TileRejected: with the reason code of the first check that failed. The checks run from
            the cheapest to the dearest, and the pixel buffer is never copied before it passed.
    """
    if frames and len(frames[0]) > max_header_bytes:  # never parsed: its ids are not read either
        raise TileRejected(Reason.BAD_HEADER, f"header frame of {len(frames[0])} bytes; at most {max_header_bytes} "
                           "([limits] max_header_bytes)")
    if len(frames) != 2:
        header = _best_effort_header(frames[0]) if frames else {}
        raise TileRejected(Reason.BAD_FRAMES, f"expected 2 frames, got {len(frames)}", header)
    try:
        header = loads(frames[0])
    except ValueError as exc:
        raise TileRejected(Reason.BAD_HEADER, str(exc)) from None
    if not isinstance(header, dict):
        raise TileRejected(Reason.BAD_HEADER, "header is not a JSON object")
    if header.get("v") != PROTOCOL_VERSION:
        raise TileRejected(
            Reason.UNKNOWN_VERSION,
            f"protocol version {header.get('v')!r}; this runtime speaks {PROTOCOL_VERSION}",
            header,
        )
    for name, kind in _REQUIRED.items():
        if name not in header:
            raise TileRejected(Reason.BAD_HEADER, f"missing field {name!r}", header)
        if not isinstance(header[name], kind) or isinstance(header[name], bool) and kind is int:
            raise TileRejected(Reason.BAD_HEADER, f"field {name!r} has the wrong type", header)
    for name, kind in _OPTIONAL.items():
        if name in header and not isinstance(header[name], kind):
            raise TileRejected(Reason.BAD_HEADER, f"field {name!r} has the wrong type", header)
    if header.get("type", "tile") != "tile":
        raise TileRejected(Reason.BAD_HEADER,
                           f"type must be \"tile\" on the tile link, got {str(header['type'])[:50]!r}",
                           header)
    if "bands" in header and not all(isinstance(b, str) for b in header["bands"]):
        raise TileRejected(Reason.BAD_HEADER, "bands must be a list of band names (strings)", header)
    shape = header["shape"]
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise TileRejected(Reason.BAD_HEADER, f"shape must be 3 positive integers, got {shape!r}", header)
    named = header.get("bands") or []  # empty: the bands are not named
    if named and len(named) != shape[0]:
        # Which name is which band is then unknown, and the band-order check (runtime.preprocess)
        # compares lists of equal length only: blue, green, red, nir on a 3-band tile went to a
        # red, green, blue model as they were, its blue into the model's red.
        raise TileRejected(Reason.BAD_HEADER, f"bands names {len(named)} bands {named!r}; shape says the tile has "
                           f"{shape[0]} (one name per band, or none)", header)
    for name in ("scene_id", "tile_id", "checksum"):
        if not _is_utf8(header[name]):
            raise TileRejected(Reason.BAD_HEADER, f"{name} is not UTF-8 text (a lone surrogate such as \\ud800)",
                               header)
    transform = header.get("transform", [1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    if len(transform) != 6 or not all(_is_finite(t, MAX_TRANSFORM) for t in transform):
        raise TileRejected(Reason.BAD_HEADER, f"transform must be 6 finite numbers within ±{MAX_TRANSFORM:g}", header)
    a, b, _, d, e, _ = (float(t) for t in transform)
    if a * e - b * d == 0.0:  # every pixel on one point or one line: no place on the map
        raise TileRejected(Reason.BAD_HEADER, f"transform {transform} is singular (determinant 0)", header)
    if not _is_finite(header["seq"]):  # echoed in every ack, result and done: it must fit a double
        raise TileRejected(Reason.BAD_HEADER, "seq must be an integer that fits a double", header)
    if "time" in header and not _is_finite(header["time"]):
        raise TileRejected(Reason.BAD_HEADER, "time must be a finite number that fits a float", header)
    window = header.get("window")
    if window is not None and (len(window) != 4 or not all(isinstance(w, int) and _is_finite(w) for w in window)):
        raise TileRejected(Reason.BAD_HEADER, "window must be 4 integers that fit a double", header)
    if header["dtype"] not in TILE_DTYPES:
        raise TileRejected(
            Reason.UNSUPPORTED_DTYPE, f"dtype {header['dtype']!r}; valid: {TILE_DTYPES}", header
        )
    bands, height, width = shape
    if bands > max_bands or height * width > max_pixels:
        raise TileRejected(
            Reason.TOO_LARGE,
            f"shape {shape} exceeds {max_bands} bands or {max_pixels} pixels",
            header,
        )
    dtype = np.dtype(header["dtype"]).newbyteorder("<")
    expected = bands * height * width * dtype.itemsize
    data = frames[1]
    if len(data) != expected:
        raise TileRejected(
            Reason.WRONG_BYTE_COUNT, f"pixel frame has {len(data)} bytes, shape needs {expected}", header
        )
    too_long = [k for k in ("scene_id", "tile_id", "checksum") if len(header[k]) > MAX_ID_CHARS]
    if too_long:
        raise TileRejected(Reason.BAD_HEADER, f"{too_long[0]} is longer than {MAX_ID_CHARS} characters", header)
    got = checksum(data)
    if got != header["checksum"]:
        raise TileRejected(
            Reason.BAD_CHECKSUM, f"pixel frame is {got}, header says {header['checksum']}", header
        )
    pixels = np.frombuffer(data, dtype=dtype).reshape(bands, height, width)
    return header, pixels


def _is_finite(value: Any, bound: float = math.inf) -> bool:
    """Whether ``value`` is a number (not a bool) that fits a float, is finite and within ±``bound``.

    JSON integers have no size limit: 10**400 is a valid header value, and ``math.isfinite`` raises
    OverflowError on it rather than saying no, which the runtime would take for a bug of its own.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and abs(number) <= bound


def _is_utf8(text: str) -> bool:
    """Whether ``text`` encodes as UTF-8: JSON may carry a lone UTF-16 surrogate (``"\\ud800"``),
    which Python decodes into a str that no UTF-8 encoder takes. Ids are echoed and encoded on
    every path a tile takes, so such an id is refused at the door."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _best_effort_header(frame: bytes) -> dict[str, Any]:
    """Read ids from a header that failed later checks, so the rejection can name its tile."""
    try:
        header = loads(frame)
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


#: Largest magnitude of a transform coefficient: far past any map coordinate or pixel size on Earth
#: (metres, feet or degrees), and small enough that polygon arithmetic cannot overflow.
MAX_TRANSFORM = 1e12

#: Longest scene_id, tile_id or checksum accepted: longer ones are refused (bad_header), so every
#: accepted tile is echoed by its ids and a resend is known as one.
MAX_ID_CHARS = 1024


def tile_key(header: dict[str, Any]) -> tuple[str, str, str] | None:
    """What makes a tile the same tile: (scene_id, tile_id, checksum of its pixels).

    The checksum is part of it so that two different scenes that happen to carry the same ids (two
    files called scene.tif) are two tiles, while a resend of the same tile is a duplicate.
    None when an id is missing or unusable (such a tile cannot be recognised again).
    """
    ids = tile_ids(header)
    if ids["scene_id"] is None or ids["tile_id"] is None or ids["checksum"] is None:
        return None
    return ids["scene_id"], ids["tile_id"], ids["checksum"]


def tile_ids(header: dict[str, Any]) -> dict[str, Any]:
    """The identifying fields of a tile that every result echoes; missing or mistyped ones are None,
    so a malformed header cannot smuggle an unhashable or huge value into acks and results."""
    ids: dict[str, Any] = {}
    for key in ("scene_id", "tile_id", "seq", "checksum"):
        value = header.get(key)
        kind = _REQUIRED[key]
        ok = (isinstance(value, kind) and not isinstance(value, bool)
              and (not isinstance(value, str) or len(value) <= MAX_ID_CHARS)
              and (not isinstance(value, int) or _is_finite(value)))
        ids[key] = value if ok else None
    return ids


def encode_result(result: dict[str, Any], mask: np.ndarray | None = None) -> list[bytes]:
    """Frames for one result: the JSON header, and the uint8 mask if one was asked for."""
    result = {"v": PROTOCOL_VERSION, "type": "result", **result}
    if mask is None:
        return [dumps(result)]
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    result["mask"] = {"shape": list(mask.shape), "dtype": "uint8"}
    return [dumps(result), mask.tobytes()]


def decode_result(frames: list[bytes]) -> tuple[dict[str, Any], np.ndarray | None]:
    """Parse a result message; returns the header and the mask (or None).

    Raises ValueError, naming the problem, for anything malformed (a mask description without a
    usable shape, a mask frame of the wrong size, an id that is neither a string nor null, a status
    other than ``ok`` or ``rejected``...): a receiver then needs to catch one exception type to drop
    one bad result and keep the rest."""
    if not frames:
        raise ValueError("result message has no frames")
    result = loads(frames[0])
    if not isinstance(result, dict) or result.get("v") != PROTOCOL_VERSION:
        raise ValueError(f"not a version {PROTOCOL_VERSION} result: {str(result)[:200]}")
    mask = None
    if "mask" in result:
        if len(frames) != 2:
            raise ValueError("result announces a mask but carries no mask frame")
        described = result["mask"]
        shape = described.get("shape") if isinstance(described, dict) else None
        if (not isinstance(shape, list) or len(shape) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
            raise ValueError(f"result's mask has no valid shape (two sizes, rows and columns): {str(described)[:200]}")
        if described.get("dtype", "uint8") != "uint8":
            raise ValueError(f"result's mask is {str(described.get('dtype'))[:50]}, not uint8")
        if int(np.prod(shape)) != len(frames[1]):
            raise ValueError(f"result's mask frame has {len(frames[1])} bytes, its shape {shape} needs "
                             f"{int(np.prod(shape))}")
        mask = np.frombuffer(frames[1], dtype=np.uint8).reshape(shape)
    # What a receiver keys and counts a result by: an id that is a list reached the ground's wait as
    # an unhashable key (TypeError), and no status a KeyError in its scoring, ending the run.
    for key in ("scene_id", "tile_id", "checksum"):
        if not isinstance(result.get(key), (str, type(None))):
            raise ValueError(f"result's {key} is not a string or null: {str(result.get(key))[:200]}")
    if result.get("status") not in ("ok", "rejected"):
        raise ValueError(f"result's status is {str(result.get('status'))[:50]!r}, not 'ok' or 'rejected'")
    return result, mask


def encode_ack(header: dict[str, Any], accepted: bool, reason: Reason | None = None,
               duplicate: bool = False) -> bytes:
    """The per-tile acknowledgement returned to the sender on the tile socket: the tile was taken
    into the pipeline (``accepted``; ``duplicate`` if it had been taken before) or refused."""
    return dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": "ack",
            **tile_ids(header),
            "status": "accepted" if accepted else "rejected",
            "reason": reason.value if reason else None,
            "duplicate": duplicate,
        }
    )


def wants_done(header: dict[str, Any]) -> bool:
    """Whether the tile's sender is to be told "done" (:func:`encode_done`): unless its header says
    ``"want_done": false`` (a sender that never resends has no use for it)."""
    return header.get("want_done", True) is not False


def encode_done(result: dict[str, Any]) -> bytes:
    """Sent to a tile's sender once its result has gone out on the results socket: the sender may
    forget the tile. Until then it keeps it, to resend if the runtime restarts."""
    return dumps(
        {
            "v": PROTOCOL_VERSION,
            "type": "done",
            **tile_ids(result),
            "status": result.get("status"),
            "reason": result.get("reason"),
            "duplicate": bool(result.get("duplicate", False)),
        }
    )
