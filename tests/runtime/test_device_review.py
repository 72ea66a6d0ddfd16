"""Review findings on the device seam: submissions after close, blobs that cannot be imported or are
not covered by the signature, device names that do not exist, and what ``compile``/``probe`` do."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.bundle import Bundle, read_bundle, sha256
from runtime.compiled import compile_bundle, compile_config, export_blob, RECORD_FORMAT
from runtime.device import OpenVINOAdapter, open_device, resolve
from tests.conftest import make_brightness_bundle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    out = tmp_path / "brightness"
    make_brightness_bundle(out)
    return out


def test_start_async_after_close_is_refused_and_a_submission_racing_close_is_delivered(bundle_dir: Path) -> None:
    """A tile submitted while close() runs is either collected or refused, never accepted and lost."""
    release = threading.Event()

    class Held(OpenVINOAdapter):
        def _result(self, request: Any) -> np.ndarray:
            release.wait(10)
            return super()._result(request)

    delivered: list[Any] = []
    adapter = Held(read_bundle(bundle_dir), "CPU", lambda out, tag: delivered.append(tag), infer_requests=1)
    batch = np.zeros(adapter.input_shape, np.float32)
    adapter.start_async(batch, 1)  # holds the only request until released
    second = threading.Thread(target=adapter.start_async, args=(batch, 2), daemon=True)
    second.start()  # blocks for a free request
    time.sleep(0.3)
    closing = threading.Thread(target=adapter.close, daemon=True)
    closing.start()
    time.sleep(0.3)
    release.set()
    closing.join(10)
    second.join(10)
    assert not closing.is_alive() and not second.is_alive()
    assert delivered == [1, 2]
    with pytest.raises(RuntimeError, match="closed"):
        adapter.start_async(batch, 3)


def _compiled_cpu(bundle_dir: Path) -> Bundle:
    proc = subprocess.run([sys.executable, "-m", "runtime", "compile", "--model", str(bundle_dir), "--target", "CPU"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return read_bundle(bundle_dir)


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_a_blob_that_cannot_be_imported_is_compiled_from_the_ir_with_the_reason(bundle_dir: Path, damage: str) -> None:
    _compiled_cpu(bundle_dir)
    path = bundle_dir / "compiled" / "CPU.blob"
    blob = path.read_bytes()
    bad = blob[: len(blob) // 2] if damage == "truncated" else b"\0" * 64
    path.write_bytes(bad)
    record = json.loads((bundle_dir / "compiled" / "CPU.json").read_text())
    record["blob_sha256"] = sha256(bad)
    (bundle_dir / "compiled" / "CPU.json").write_text(json.dumps(record))
    adapter = open_device(read_bundle(bundle_dir), "CPU", lambda *_: None, infer_requests=1)
    try:
        assert adapter.load["how"] == "compiled" and "blob could not be imported" in adapter.load["detail"], adapter.load
        out = adapter.infer(np.full(adapter.input_shape, 255.0, np.float32))
        assert float(out.mean()) > 0.99
    finally:
        adapter.close()
    np.save(bundle_dir.parent / "tile.npy", np.zeros((3, 64, 64), np.uint8))
    proc = subprocess.run([sys.executable, "-m", "runtime", "infer", "--model", str(bundle_dir), "--input",
                           str(bundle_dir.parent / "tile.npy"), "--device", "CPU", "--output",
                           str(bundle_dir.parent / "out.geojson")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


class _FakeCore:
    available_devices = ["CPU", "MYRIAD.1.2-ma2480", "GPU.0", "GPU.1"]


@pytest.mark.parametrize("name", ["CPU", "MYRIAD", "MYRIAD.1.2-ma2480", "GPU", "GPU.1", "myriadx-emu"])
def test_attached_names_and_families_resolve(name: str) -> None:
    assert resolve(name, _FakeCore()) == name


@pytest.mark.parametrize("name", ["CPU.7", "CPU.garbage", "MYRIAD.9.9-ma2480", "MYRIAD.", "GPU.2", "NPU", "cpu", ""])
def test_names_that_are_not_attached_are_refused_with_the_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match="not available here; valid: .*MYRIAD.1.2-ma2480"):
        resolve(name, _FakeCore())


def test_infer_on_an_instance_that_is_not_there_is_a_clear_error(bundle_dir: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "tile.npy", np.zeros((3, 64, 64), np.uint8))
    proc = subprocess.run([sys.executable, "-m", "runtime", "infer", "--model", str(bundle_dir), "--input",
                           str(tmp_path / "tile.npy"), "--device", "CPU.7", "--output", str(tmp_path / "o.json")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "not available here" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("device", ["GPU.9", "MYRIAD.1.2-ma2480", "CPU.7"])
def test_probe_on_a_device_that_is_not_there_is_a_clear_error(device: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "runtime", "probe", "--device", device],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.startswith("error: ") and "not available here" in proc.stderr and "Traceback" not in proc.stderr


def test_probe_resolves_flight_like_infer() -> None:
    from runtime.device import flight_default
    from runtime.probe import Runner

    assert Runner("flight").device == flight_default()[0]


def test_compile_out_keeps_the_signature_of_the_unchanged_manifest(bundle_dir: Path, tmp_path: Path) -> None:
    from runtime.signing import load_public_key, make_signing_keys, sign_bundle_dir, verify

    secret, public = make_signing_keys(tmp_path / "keys")
    sign_bundle_dir(bundle_dir, secret)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "runtime", "compile", "--model", str(bundle_dir), "--target", "CPU",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "signature.json").read_bytes() == (bundle_dir / "signature.json").read_bytes()
    verify(read_bundle(out), load_public_key(public))
    assert "sign" in proc.stdout  # it says the new blob needs signing again


def _foreign_blob(bundle: Bundle) -> Bundle:
    """``bundle`` with a CPU blob of another model (dark pixels are vessels), its record self-consistent."""
    import openvino as ov
    from openvino import opset8 as ops

    from runtime import ov_api

    x = ops.parameter([1, 3, 64, 64], np.float32, name="input")
    conv = ops.convolution(x, ops.constant(np.full((1, 3, 1, 1), -10.0 / 3, np.float32)), [1, 1], [0, 0], [0, 0], [1, 1])
    y = ops.sigmoid(ops.add(conv, ops.constant(np.full((1, 1, 1, 1), 5.0, np.float32))))
    config = compile_config("CPU")
    blob = export_blob(ov.Core().compile_model(ov.Model([y], [x], "evil"), "CPU", config))
    record = {"format": RECORD_FORMAT, "target": "CPU", "compiled_on": "CPU", "openvino": ov_api.version(),
              "config": {k: str(v) for k, v in config.items()}, "ir_sha256": dict(bundle.manifest["files"]),
              "blob_sha256": sha256(blob)}
    return Bundle(bundle.manifest, bundle.files, bundle.manifest_bytes,
                  {"CPU": (json.dumps(record).encode(), blob)}, signature=bundle.signature)


def test_a_blob_the_signature_does_not_cover_is_not_imported(bundle_dir: Path, tmp_path: Path) -> None:
    """A foreign blob beside a signed manifest: the signature still verifies for the manifest, and the
    runtime compiles the signed IR instead of running the blob."""
    from runtime.signing import load_public_key, make_signing_keys, sign, sign_bundle_dir, verify

    secret, public = make_signing_keys(tmp_path / "keys")
    key = load_public_key(public)
    sign_bundle_dir(bundle_dir, secret)
    forged = _foreign_blob(read_bundle(bundle_dir))
    verify(forged, key)  # the manifest's signature is still good
    dark = np.zeros((1, 3, 64, 64), np.float32)
    adapter = open_device(forged, "CPU", lambda *_: None, infer_requests=1)
    try:
        assert adapter.load["how"] == "compiled" and "not covered by the bundle's signature" in adapter.load["detail"]
        assert float(adapter.infer(dark).mean()) < 0.01  # the signed model: dark pixels are not vessels
    finally:
        adapter.close()
    # signed by the ground with the blob there, the blob is covered and imported
    resigned = Bundle(forged.manifest, forged.files, forged.manifest_bytes, forged.compiled,
                      signature=sign(forged, secret))
    verify(resigned, key)
    adapter = open_device(resigned, "CPU", lambda *_: None, infer_requests=1)
    try:
        assert adapter.load["how"] == "imported", adapter.load
    finally:
        adapter.close()
    # another blob in place of the covered one is not covered
    other = compile_bundle(read_bundle(bundle_dir), "CPU")
    swapped = Bundle(other.manifest, other.files, other.manifest_bytes, other.compiled, signature=resigned.signature)
    verify(swapped, key)
    adapter = open_device(swapped, "CPU", lambda *_: None, infer_requests=1)
    try:
        assert adapter.load["how"] == "compiled" and "not covered" in adapter.load["detail"], adapter.load
    finally:
        adapter.close()


def test_sign_bundle_dir_covers_the_blobs_there(bundle_dir: Path, tmp_path: Path) -> None:
    from runtime.signing import load_public_key, make_signing_keys, sign_bundle_dir, verify

    secret, public = make_signing_keys(tmp_path / "keys")
    _compiled_cpu(bundle_dir)
    sign_bundle_dir(bundle_dir, secret)
    bundle = read_bundle(bundle_dir)
    verify(bundle, load_public_key(public))
    adapter = open_device(bundle, "CPU", lambda *_: None, infer_requests=1)
    try:
        assert adapter.load["how"] == "imported", adapter.load
    finally:
        adapter.close()


def test_a_completion_handler_that_fails_once_does_not_stop_the_collector(bundle_dir: Path) -> None:
    """An exception from the runtime's completion handler ended the adapter's collector thread, and every
    request after it stayed in flight for ever (review). The adapter and its model are real; the handler is
    its port, failing on the first request as a bug in it would."""
    done: list[Any] = []

    def handler(output: Any, userdata: Any) -> None:
        if userdata == 0:
            raise RuntimeError("injected: a bug in the runtime's handler")
        done.append(userdata)

    adapter = open_device(read_bundle(bundle_dir), "CPU", handler, infer_requests=2)
    try:
        for i in range(4):
            adapter.start_async(np.zeros(adapter.input_shape, np.float32), i)
        assert adapter.wait_all(30), "requests stayed in flight"
        assert sorted(done) == [1, 2, 3] and adapter.in_flight == 0
    finally:
        adapter.close()
