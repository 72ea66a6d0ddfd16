"""Model uplink on the flight device (the Myriad X twin here): every bad bundle is refused, the
serving model goes on serving, and a good one replaces it with the old one kept."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from hil.runtime_proc import RuntimeProcess
from runtime import config
from runtime.bundle import Bundle, read_bundle, sha256, write_bundle
from runtime.client import ControlClient, ControlError
from runtime.server import Runtime, Settings
from tests.conftest import make_brightness_bundle, serving_process


@pytest.fixture()
def emu_runtime(brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> Iterator[Runtime]:
    runtime = Runtime(Settings.from_config(config.defaults(), device="myriadx-emu", **ipc_endpoints),
                      model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    yield runtime
    runtime.stop()
    thread.join(30)


@pytest.fixture()
def emu_process(brightness_bundle: Path, tmp_path: Path) -> Iterator[RuntimeProcess]:
    """A runtime process on the Myriad X twin, serving the brightness model."""
    with serving_process("myriadx-emu", brightness_bundle, tmp_path / "runtime.log") as proc:
        yield proc


def still_serves(endpoints: dict[str, str], n: int = 4) -> None:
    """``n`` ship tiles streamed after the refusals: each accepted, processed once, ok, and done."""
    from flightsim.streamer import Streamer
    from hil.collector import ResultCollector
    from tests.runtime.test_server import _tile

    ground = ResultCollector(endpoints["results"], acks=endpoints.get("acks"))
    streamer = Streamer(endpoints["tiles"], window=4, resend_after_s=30.0)
    try:
        log = streamer.stream([_tile(i) for i in range(n)])
        assert all(a["status"] == "accepted" for a in log.acks.values()), log.acks
        assert ground.wait_for(n, 30) and not ground.wait_for(n + 1, 0.3)
        assert sorted(r["tile_id"] for _, r, _ in ground.results) == sorted(f"scene/{i}" for i in range(n))
        assert all(r["status"] == "ok" and r["model"]["name"] == "brightness" for _, r, _ in ground.results)
        assert log.done == {f"scene/{i}" for i in range(n)}
    finally:
        ground.close()
        streamer.close()


def _interpolate11_bundle(out: Path) -> Bundle:
    """A bundle whose IR upsamples with Interpolate-11: the 2022.3 MYRIAD toolkit rejects opset11."""
    from openvino import opset11

    x = opset11.parameter([1, 3, 32, 32], np.float32, name="input")
    mean = opset11.reduce_mean(x, opset11.constant(np.array([1], np.int64)), keep_dims=True)
    up = opset11.interpolate(mean, opset11.constant(np.array([2.0, 2.0], np.float32)), "nearest", "scales",
                             axes=opset11.constant(np.array([2, 3], np.int64)))
    pooled = opset11.avg_pool(up, [2, 2], [0, 0], [0, 0], [2, 2], exclude_pad=True)
    model = ov.Model([opset11.sigmoid(pooled)], [x], "interp11")
    template = make_brightness_bundle(out / "template", size=32).manifest
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(model, Path(tmp) / "m.xml", compress_to_fp16=True)
        xml, bin_ = (Path(tmp) / "m.xml").read_bytes(), (Path(tmp) / "m.bin").read_bytes()
    return write_bundle(out / "interp11", xml, bin_,
                        {k: v for k, v in template.items() if k not in ("files", "format", "created")})


def test_each_bad_upload_is_refused_and_the_old_model_serves(emu_runtime: Runtime, tmp_path: Path) -> None:
    control = ControlClient(emu_runtime.endpoints["control"])
    serving = control.status()["model"]
    good = make_brightness_bundle(tmp_path / "good", name="good")
    frames = good.frames()

    tampered = bytearray(frames[2])
    tampered[0] ^= 1
    with pytest.raises(ControlError, match="model.bin sha256"):
        control.request("load_model", [frames[0], frames[1], bytes(tampered)], manifest_sha256=good.id)

    manifest = json.loads(frames[0])
    manifest["input"]["normalization"]["where"] = "somewhere"
    bad_manifest = json.dumps(manifest).encode()
    with pytest.raises(ControlError, match="normalization.where"):
        control.request("load_model", [bad_manifest, frames[1], frames[2]], manifest_sha256=sha256(bad_manifest))

    not_ir = write_bundle(tmp_path / "not_ir", b"<net/>", frames[2],
                          {k: v for k, v in good.manifest.items() if k not in ("files", "format", "created")})
    with pytest.raises(ControlError, match="model refused"):
        control.load_model(not_ir)

    with pytest.raises(ControlError, match="Myriad X cannot run.*opset11"):
        control.load_model(_interpolate11_bundle(tmp_path))

    with pytest.raises(ControlError, match="one frame per file it lists"):
        control.request("load_model", frames[:2], manifest_sha256=good.id)

    # without manifest_sha256 the manifest frame itself went unchecked (the files are checked against it)
    with pytest.raises(ControlError, match="load_model carries manifest_sha256"):
        control.request("load_model", frames)

    status = control.status()
    assert status["model"] == serving and status["device"] == "myriadx-emu"
    assert status["numerics"]["profile"] == "fp16-myriadx" and status["latency_estimate"]["kind"] == "ESTIMATE"

    assert control.load_model(good)["model"]["sha256"] == good.id
    assert read_bundle(emu_runtime.store.previous_path()).id == serving["sha256"]
    assert control.status()["model"]["name"] == "good"


def _bundle_from(model: ov.Model, out: Path, template: dict, **manifest_changes: object) -> Bundle:
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(model, Path(tmp) / "m.xml", compress_to_fp16=True)
        xml, bin_ = (Path(tmp) / "m.xml").read_bytes(), (Path(tmp) / "m.bin").read_bytes()
    manifest = {k: v for k, v in template.items() if k not in ("files", "format", "created")}
    for key, value in manifest_changes.items():
        table, field = key.split("__")
        manifest[table] = {**manifest[table], field: value}
    return write_bundle(out, xml, bin_, manifest)


def test_models_that_load_but_cannot_serve_are_refused(emu_process: RuntimeProcess, tmp_path: Path) -> None:
    """Adversarial test (issue 13), against a runtime process: an IR that is NaN on every real tile
    (not on zeros), an IR whose input has fewer bands than its manifest, and one of another size all
    used to install. Each is refused with the reason, and the old model serves every tile after."""
    from openvino import opset8 as ops

    control = ControlClient(emu_process.endpoints["control"])
    serving = control.status()["model"]
    template = make_brightness_bundle(tmp_path / "t", size=64).manifest
    x = ops.parameter([1, 3, 64, 64], np.float32, name="input")
    mean = ops.reduce_mean(x, ops.constant(np.array([1], np.int64)), keep_dims=True)
    # log(1 - mean): 0 on an all-zero tile, NaN once the normalised counts pass 1.
    nan_on_data = ov.Model([ops.sigmoid(ops.log(ops.subtract(ops.constant(np.float32(1.0)), mean)))], [x], "nan")
    bad = _bundle_from(nan_on_data, tmp_path / "nan", template,
                       input__normalization={"where": "host", "mean": [0.0] * 3, "std": [1.0] * 3})
    with pytest.raises(ControlError, match="non-finite"):
        control.load_model(bad)

    one_band = ops.parameter([1, 1, 64, 64], np.float32, name="input")
    with pytest.raises(ControlError, match="does not match the IR"):
        control.load_model(_bundle_from(ov.Model([ops.sigmoid(one_band)], [one_band], "1band"), tmp_path / "b1", template))
    small = ops.parameter([1, 3, 32, 32], np.float32, name="input")
    small_mean = ops.reduce_mean(small, ops.constant(np.array([1], np.int64)), keep_dims=True)
    with pytest.raises(ControlError, match="does not match the IR"):
        control.load_model(_bundle_from(ov.Model([ops.sigmoid(small_mean)], [small], "s"), tmp_path / "s", template))
    assert control.status()["model"] == serving
    still_serves(emu_process.endpoints)


def test_a_command_over_the_whole_message_cap_is_refused_with_a_reason(brightness_bundle: Path, tmp_path: Path) -> None:
    """Issue 13, against a runtime process: frames under the per-frame cap that add up to more than
    max_message_bytes, or too many frames, get a refusal that says so (not an upload), and the
    runtime goes on serving every tile."""
    cfg = tmp_path / "runtime.toml"
    cfg.write_text("[limits]\nmax_message_bytes = 4194304\n")
    proc = RuntimeProcess("CPU", tmp_path / "runtime.log", startup_timeout_s=60, config=cfg)
    control = ControlClient(proc.endpoints["control"])
    try:
        control.load_model(brightness_bundle)
        with pytest.raises(ControlError, match="at most 32 frames and 4194304 bytes"):
            control.request("status", [b"x" * (3 << 20), b"y" * (3 << 20)])
        with pytest.raises(ControlError, match="at most 32 frames"):
            control.request("status", [b""] * 40)
        assert control.status()["model"]["name"] == "brightness"
        still_serves(proc.endpoints)
    finally:
        control.close()
        proc.close()
