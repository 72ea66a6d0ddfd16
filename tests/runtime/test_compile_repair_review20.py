"""``runtime compile`` and the blobs it makes, found by a review of 2026-12-06 (each test failed before):

- compiling again over a damaged or stale blob of the same target failed on reading the bundle
  ("compiled/CPU.blob sha256 is ..., its record says ..."), so the command could not repair its own blob;
- a golden tile added after compiling discarded the blob: its record named every file of the manifest
  (the golden tile's too), not the IR alone that the blob is made from;
- ``compile --target MYRIAD`` did not run the MYRIAD rules of ``runtime check``: an IR the runtime
  refuses on a MYRIAD was compiled (on a ground with a stick) and shipped.

Real OpenVINO CPU compiles, the real command line and real bundle folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from runtime import ov_api
from runtime.__main__ import main
from runtime.bundle import read_bundle, rewritable_manifest, sha256, write_bundle
from runtime.device import open_device
from runtime.golden import with_golden


def _compiled_copy(tmp_path: Path, bundle_dir: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(bundle_dir, out)
    assert main(["compile", "--model", str(out), "--target", "CPU"]) == 0
    return out


def _imports(bundle_dir: Path) -> dict[str, str]:
    adapter = open_device(read_bundle(bundle_dir), "CPU", lambda *_: None, infer_requests=1)
    try:
        return adapter.load
    finally:
        adapter.close()


@pytest.mark.parametrize("damage", ["blob", "stale_record", "record_without_blob"])
def test_compile_again_replaces_a_damaged_or_stale_blob_of_its_target(
        tmp_path: Path, brightness_bundle: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _compiled_copy(tmp_path, brightness_bundle)
    blob, record = out / "compiled" / "CPU.blob", out / "compiled" / "CPU.json"
    if damage == "blob":  # truncated on the way
        blob.write_bytes(blob.read_bytes()[:100])
    elif damage == "stale_record":  # compiled from another IR
        fields = json.loads(record.read_text())
        record.write_text(json.dumps({**fields, "ir_sha256": {"model.xml": "0" * 64, "model.bin": "0" * 64}}))
    else:
        blob.unlink()
    with pytest.raises(ValueError):
        read_bundle(out)  # what a runtime would refuse
    capsys.readouterr()
    assert main(["compile", "--model", str(out), "--target", "CPU"]) == 0, capsys.readouterr().err
    bundle = read_bundle(out)
    record_bytes, blob_bytes = bundle.compiled["CPU"]
    assert json.loads(record_bytes)["blob_sha256"] == sha256(blob_bytes) == sha256(blob.read_bytes())
    assert sorted(p.name for p in (out / "compiled").iterdir()) == ["CPU.blob", "CPU.json"]  # nothing left aside
    assert _imports(out)["from"] == "blob"


def test_compile_to_out_over_a_damaged_blob_of_its_target_replaces_it(tmp_path: Path, brightness_bundle: Path) -> None:
    source = _compiled_copy(tmp_path, brightness_bundle)
    (source / "compiled" / "CPU.blob").write_bytes(b"damaged")
    assert main(["compile", "--model", str(source), "--target", "CPU", "--out", str(tmp_path / "out")]) == 0
    assert read_bundle(tmp_path / "out").compiled["CPU"] and _imports(tmp_path / "out")["from"] == "blob"


def test_a_golden_tile_added_after_compiling_keeps_the_blob(tmp_path: Path, brightness_bundle: Path) -> None:
    out = _compiled_copy(tmp_path, brightness_bundle)
    blob = (out / "compiled" / "CPU.blob").read_bytes()
    tile = np.full((3, 64, 64), 40, dtype=np.uint8)
    tile[:, 20:30, 20:30] = 250  # bright pixels: the brightness model's vessels
    with_golden(out, tile)
    bundle = read_bundle(out)
    assert "golden.npz" in bundle.files and bundle.compiled["CPU"][1] == blob
    assert _imports(out)["from"] == "blob"  # and the acceptance path takes it
    # The record names the IR alone, so a golden tile replaced later keeps the blob too.
    record = json.loads(bundle.compiled["CPU"][0])
    assert record["ir_sha256"] == {n: bundle.manifest["files"][n] for n in ("model.xml", "model.bin")}
    with_golden(out, np.flip(tile, axis=2).copy())
    assert read_bundle(out).compiled["CPU"][1] == blob


def test_a_record_made_before_listing_the_golden_tile_still_reads(tmp_path: Path, brightness_bundle: Path) -> None:
    """Records written before 2026-12-06 name every file of the manifest: their IR entries are compared."""
    out = _compiled_copy(tmp_path, brightness_bundle)
    record = out / "compiled" / "CPU.json"
    fields = json.loads(record.read_text())
    fields["ir_sha256"] = {**fields["ir_sha256"], "golden.npz": "1" * 64}
    record.write_text(json.dumps(fields))
    assert "CPU" in read_bundle(out).compiled


def _myriad_refused_bundle(tmp_path: Path, like: Path) -> Path:
    """``like``'s manifest over an IR of dynamic rank: ``runtime check --target MYRIAD`` finds errors in it."""
    op = ov_api.opset(8)
    image = op.parameter(ov.PartialShape.dynamic(), ov_api.Type.f32)
    ov_api.save_ir(ov_api.Model([op.sigmoid(image)], [image]), tmp_path / "ir" / "model.xml")
    out = tmp_path / "dynamic"
    write_bundle(out, (tmp_path / "ir" / "model.xml").read_bytes(), (tmp_path / "ir" / "model.bin").read_bytes(),
                 rewritable_manifest(read_bundle(like)))
    return out


def test_compile_for_myriad_refuses_what_runtime_check_refuses_before_compiling(
        tmp_path: Path, brightness_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle_dir = _myriad_refused_bundle(tmp_path, brightness_bundle)
    assert main(["check", "--model", str(bundle_dir), "--target", "MYRIAD"]) == 1
    capsys.readouterr()
    assert main(["compile", "--model", str(bundle_dir), "--target", "MYRIAD"]) == 2
    err = capsys.readouterr().err
    # Refused by the op check, not by the missing stick (no MYRIAD is attached here: any later step says so).
    assert err.startswith("error: MYRIAD cannot run this bundle's IR (python -m runtime check --target MYRIAD), "
                          "nothing compiled: "), err
    assert "Parameter" in err and "not attached" not in err and len(err.splitlines()) == 1
    assert not (bundle_dir / "compiled").exists()


def test_compile_for_myriad_of_an_ir_the_rules_pass_goes_on_to_look_for_the_stick(
        brightness_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "--model", str(brightness_bundle), "--target", "MYRIAD"]) == 2
    assert "is not a MYRIAD attached here" in capsys.readouterr().err
