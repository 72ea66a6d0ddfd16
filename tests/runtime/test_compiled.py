"""Models compiled on the ground (runtime.compiled, ``runtime compile``): imported, never recompiled."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import ov_api
from runtime.bundle import Bundle, BundleError, read_bundle, sha256, write_compiled
from runtime.client import ControlClient
from runtime.compiled import compile_bundle
from runtime.device import open_device

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "models" / "default"


@pytest.fixture()
def compiled_dir(tmp_path: Path) -> Path:
    """models/default with a CPU blob made by the command line, as a user would."""
    out = tmp_path / "default"
    proc = subprocess.run([sys.executable, "-m", "runtime", "compile", "--model", str(DEFAULT), "--target", "CPU",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "compiled" / "CPU.blob").is_file() and not (DEFAULT / "compiled").exists()
    return out


def _outputs(bundle: Bundle, batch: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    adapter = open_device(bundle, "CPU", lambda *_: None, infer_requests=1)
    try:
        return adapter.infer(batch), adapter.load
    finally:
        adapter.close()


def test_a_matching_blob_is_imported_without_compiling(compiled_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = np.random.default_rng(0).standard_normal((1, 3, 256, 256)).astype(np.float32)
    reference, load = _outputs(read_bundle(DEFAULT), batch)
    assert load["how"] == "compiled" and "no compiled blob" in load["detail"]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compile_model called although a matching blob was there")

    monkeypatch.setattr(ov_api.Core, "compile_model", refuse)
    got, load = _outputs(read_bundle(compiled_dir), batch)
    assert load["how"] == "imported", load
    assert np.array_equal(got, reference)


def _with_record(bundle: Bundle, **changes: object) -> Bundle:
    (target, (record, blob)), = bundle.compiled.items()
    record_json = {**json.loads(record), **changes}
    new_target = str(record_json["target"])
    return Bundle(bundle.manifest, bundle.files, bundle.manifest_bytes,
                  {new_target: (json.dumps(record_json).encode(), blob)})


@pytest.mark.parametrize("change, reason", [
    ({"openvino": "2022.3.2-9279-e2c7e4d7b4d-releases/2022/3"}, "made by OpenVINO 2022.3.2"),
    ({"target": "MYRIAD"}, "not CPU"),
    ({"config": {"PERFORMANCE_HINT": "LATENCY"}}, "compiled with"),
])
def test_a_blob_for_another_target_toolkit_or_config_is_refused_with_a_reason(
        compiled_dir: Path, change: dict, reason: str) -> None:
    bundle = _with_record(read_bundle(compiled_dir), **change)
    _, load = _outputs(bundle, np.zeros((1, 3, 256, 256), np.float32))
    assert load["how"] == "compiled" and reason in load["detail"], load


def test_a_blob_that_does_not_match_its_record_or_the_ir_is_a_bundle_error(compiled_dir: Path) -> None:
    blob = compiled_dir / "compiled" / "CPU.blob"
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    with pytest.raises(BundleError, match="CPU.blob sha256"):
        read_bundle(compiled_dir)
    record = json.loads((compiled_dir / "compiled" / "CPU.json").read_text())
    record["blob_sha256"] = sha256(blob.read_bytes())
    record["ir_sha256"] = {"model.xml": "0" * 64, "model.bin": "0" * 64}
    (compiled_dir / "compiled" / "CPU.json").write_text(json.dumps(record))
    with pytest.raises(BundleError, match="another IR"):
        read_bundle(compiled_dir)
    record["target"] = "../../etc"
    (compiled_dir / "compiled" / "CPU.json").write_text(json.dumps(record))
    with pytest.raises(BundleError, match="not a device name"):
        read_bundle(compiled_dir)


def test_compile_refuses_twins_and_absent_devices() -> None:
    bundle = read_bundle(DEFAULT)
    with pytest.raises(ValueError, match="device family"):
        compile_bundle(bundle, "myriadx-emu")
    for name in ("foo", "cpu"):  # were told "device 'foo' is not a foo attached here"
        with pytest.raises(ValueError, match=r"--target is a device family \(valid: \['CPU', 'MYRIAD', 'NPU', 'GPU'\]\)"):
            compile_bundle(bundle, name)
    if "MYRIAD" not in ov_api.Core().available_devices:
        with pytest.raises(ValueError, match="not a MYRIAD attached here"):
            compile_bundle(bundle, "MYRIAD")


def test_an_uplinked_blob_is_imported_and_installed(compiled_dir: Path, running_runtime: object) -> None:
    """Over the control channel, as in flight: the blob travels with the bundle, the runtime says
    it imported it, and the store keeps it for the next start."""
    runtime = running_runtime
    client = ControlClient(runtime.settings.endpoints["control"])  # type: ignore[attr-defined]
    try:
        reply = client.load_model(compiled_dir)
    finally:
        client.close()
    assert reply["ok"] and reply["load"]["how"] == "imported", reply
    installed = runtime.store.current_path()  # type: ignore[attr-defined]
    assert (installed / "compiled" / "CPU.blob").read_bytes() == (compiled_dir / "compiled" / "CPU.blob").read_bytes()
    assert read_bundle(installed).compiled.keys() == {"CPU"}


def test_write_compiled_round_trips(tmp_path: Path) -> None:
    bundle = compile_bundle(read_bundle(DEFAULT), "CPU")
    shutil.copytree(DEFAULT, tmp_path / "b")
    write_compiled(tmp_path / "b", bundle)
    assert read_bundle(tmp_path / "b").compiled == bundle.compiled
