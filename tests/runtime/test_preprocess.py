"""runtime.preprocess.Preprocessor: a tile in the model's own input type reaches the device without
a host copy when it can, and with one (and its padding) when it cannot."""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest
import zmq

from runtime import protocol
from runtime.preprocess import Preprocessor

SHAPE = (1, 3, 64, 64)


def in_ir(dtype: str, pad: int = 7) -> Preprocessor:
    """A preprocessor for a model that takes ``dtype`` counts and normalises them in the IR."""
    return Preprocessor({"dtype": dtype, "normalization": {"where": "ir", "pad": [pad] * 3}}, SHAPE)


def received(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` as the runtime holds a received tile: decoded in place from a ZeroMQ frame."""
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        a.bind("inproc://tile")
        b.connect("inproc://tile")
        header = protocol.TileHeader("s", "t", 0, (0, 0, 0), "", "")
        a.send_multipart(protocol.encode_tile(header, pixels), copy=False)
        frames = b.recv_multipart(copy=False)
        _, decoded = protocol.decode_tile([f.buffer for f in frames], 1 << 20, 16, 1 << 16)
    finally:
        a.close(0)
        b.close(0)
        ctx.term()  # the frames' memory outlives the context: numpy holds the frame
    return decoded


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_a_received_tile_of_the_models_type_is_lent_to_the_device_without_a_copy(dtype: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 200, (3, 64, 64)).astype(dtype)
    tile = received(pixels)
    assert tile.flags.writeable  # a received frame's memory is the tile's own
    batch, valid = in_ir(dtype)(tile, {})
    assert valid == (64, 64) and batch.shape == SHAPE and batch.dtype == np.dtype(dtype)
    assert np.shares_memory(batch, tile)
    np.testing.assert_array_equal(batch[0], pixels)
    # and OpenVINO takes it as it is: the tensor is the frame's memory
    assert ov.Tensor(batch, shared_memory=True).data.ctypes.data == tile.ctypes.data


def test_a_read_only_tile_is_copied_since_openvino_shares_only_writeable_memory() -> None:
    pixels = np.arange(3 * 64 * 64, dtype=np.uint8).reshape(3, 64, 64)
    tile = np.frombuffer(pixels.tobytes(), np.uint8).reshape(3, 64, 64)  # bytes: read-only
    batch, _ = in_ir("uint8")(tile, {})
    assert not np.shares_memory(batch, tile)
    np.testing.assert_array_equal(batch[0], pixels)
    ov.Tensor(batch, shared_memory=True)  # would raise "array is not writeable" on the tile itself


def test_an_edge_tile_is_copied_into_its_padding() -> None:
    tile = received(np.full((3, 40, 64), 3, np.uint8))
    batch, valid = in_ir("uint8", pad=7)(tile, {})
    assert valid == (40, 64) and batch.shape == SHAPE and not np.shares_memory(batch, tile)
    assert (batch[0, :, :40] == 3).all() and (batch[0, :, 40:] == 7).all()


@pytest.mark.parametrize("said", [{}, {"pad": None}])
def test_a_pad_not_recorded_pads_with_zero_counts_whether_absent_or_null(said: dict) -> None:
    """The bundle reader takes a null ``pad`` as not recorded, like an absent one; the preprocessor
    raised a numpy TypeError on it, and the model could not be loaded."""
    pre = Preprocessor({"dtype": "uint8", "normalization": {"where": "ir", **said}}, SHAPE)
    batch, _ = pre(np.full((3, 40, 64), 3, np.uint8), {})
    assert (batch[0, :, :40] == 3).all() and (batch[0, :, 40:] == 0).all()


def test_a_narrower_type_is_converted_into_a_copy() -> None:
    tile = received(np.full((3, 64, 64), 250, np.uint8))
    batch, _ = in_ir("uint16")(tile, {})
    assert batch.dtype == np.uint16 and not np.shares_memory(batch, tile) and (batch == 250).all()


def test_a_tile_normalised_on_the_host_is_never_lent() -> None:
    pre = Preprocessor({"dtype": "float32", "normalization": {"where": "host", "mean": [1.0] * 3,
                                                             "std": [2.0] * 3}}, SHAPE)
    tile = np.full((3, 64, 64), 5.0, np.float32)  # already the model's type, writeable, full size
    batch, _ = pre(tile, {})
    assert not np.shares_memory(batch, tile)
    np.testing.assert_allclose(batch, 2.0)
    assert (tile == 5.0).all()  # the counts themselves are left as they came


def test_a_log_scale_takes_log_of_one_plus_the_counts_so_a_dark_pixel_stays_finite() -> None:
    """``normalization.scale = "log"`` is ``(log(1 + counts) - mean) / std``: a zero count (SAR shadow,
    no-data) is log(1) = 0, never -inf fed to the model."""
    norm = {"where": "host", "scale": "log", "mean": [1.0, 2.0, 3.0], "std": [2.0, 4.0, 8.0]}
    pre = Preprocessor({"dtype": "float32", "normalization": norm}, SHAPE)
    pixels = np.zeros((3, 64, 64), np.uint16)
    pixels[:, 0, 0] = 1000
    batch, _ = pre(pixels, {})
    mean, std = np.array(norm["mean"]), np.array(norm["std"])
    assert np.isfinite(batch).all()
    np.testing.assert_allclose(batch[0, :, 1, 1], (0.0 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(batch[0, :, 0, 0], (np.log1p(1000.0) - mean) / std, rtol=1e-6)
