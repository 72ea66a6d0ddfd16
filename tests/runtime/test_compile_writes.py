"""Compiled blobs written into bundles (``runtime compile``, runtime.bundle.write_compiled): the
bundle reads back whole whatever the folder held before, wherever a writer is stopped, and whatever
another compile of the same bundle wrote meanwhile; a record is read only as what it says it is;
and a target is named as the runtime names devices.

Found by a review of 2026-12-04; each test here but the second (which holds the fix of the first
to what it must keep) failed on the code before it, the stopped recompile when stopped before its record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import openvino as ov
import pytest

import runtime.bundle
import runtime.compiled
from runtime.__main__ import main
from runtime.bundle import COMPILED_FORMAT, Bundle, BundleError, from_frames, read_bundle, sha256, write_compiled
from runtime.signing import make_signing_keys, sign_bundle_dir

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "models" / "default"
OPTICAL = REPO / "models" / "optical"


def _artefact(bundle: Bundle, target: str, blob: bytes = b"a blob") -> tuple[bytes, bytes]:
    """A (record, blob) pair for ``target`` that the bundle reader accepts: it is never imported here."""
    record = {"format": COMPILED_FORMAT, "target": target, "ir_sha256": dict(bundle.manifest["files"]),
              "blob_sha256": sha256(blob)}
    return json.dumps(record).encode(), blob


def _compile(*args: str | Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "runtime", "compile", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_compile_out_over_another_bundle_leaves_the_new_one_alone(tmp_path: Path) -> None:
    """``--out`` into the folder of an earlier flight model: its blobs (of another IR) and its signature
    (of another manifest) went with it, or the new bundle would not read back (the blobs) and a
    runtime would refuse the new model's blob as unsigned (the signature)."""
    out = tmp_path / "flight"
    _compile("--model", OPTICAL, "--target", "CPU", "--out", out)
    old = read_bundle(out)
    write_compiled(out, replace(old, compiled={"NPU": _artefact(old, "NPU")}))
    private, _ = make_signing_keys(tmp_path / "keys")
    sign_bundle_dir(out, private)
    _compile("--model", DEFAULT, "--target", "CPU", "--out", out)
    got = read_bundle(out)
    assert got.id == read_bundle(DEFAULT).id
    assert sorted(got.compiled) == ["CPU"] and got.signature is None


def test_compile_out_over_the_same_bundle_keeps_its_other_blobs(tmp_path: Path) -> None:
    out = tmp_path / "flight"
    _compile("--model", DEFAULT, "--target", "CPU", "--out", out)
    first = read_bundle(out)
    write_compiled(out, replace(first, compiled={"NPU": _artefact(first, "NPU")}))
    _compile("--model", DEFAULT, "--target", "CPU", "--out", out)
    assert sorted(read_bundle(out).compiled) == ["CPU", "NPU"]


@pytest.mark.parametrize("stopped_at", [".blob", ".json"])
def test_a_recompile_stopped_half_way_leaves_a_bundle_that_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 stopped_at: str) -> None:
    """Recompiling a target in place (here for bf16) killed before its blob or its record is written:
    the bundle reads back (the runtime compiles its IR where no blob is left), and the same command
    run again makes the blob. The new blob used to go beside the old record first, and the bundle
    then read as damaged, to every command including ``compile``."""
    bundle_dir = tmp_path / "b"
    shutil.copytree(DEFAULT, bundle_dir)
    assert main(["compile", "--model", str(bundle_dir), "--target", "CPU"]) == 0
    bf16 = tmp_path / "bf16.toml"
    bf16.write_text('[inference]\ncpu_precision = "bf16"\n')
    write = runtime.bundle.write_atomic

    def killed(path: Path, data: bytes) -> None:
        if str(path).endswith(stopped_at):
            raise KeyboardInterrupt(f"killed before {path.name} was written")
        write(path, data)

    monkeypatch.setattr(runtime.bundle, "write_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        main(["compile", "--model", str(bundle_dir), "--target", "CPU", "--config", str(bf16)])
    monkeypatch.setattr(runtime.bundle, "write_atomic", write)
    read_bundle(bundle_dir)  # whole: no record beside a blob of another
    assert main(["compile", "--model", str(bundle_dir), "--target", "CPU", "--config", str(bf16)]) == 0
    record = json.loads(read_bundle(bundle_dir).compiled["CPU"][0])
    assert record["config"]["INFERENCE_PRECISION_HINT"] == "bf16"


def test_compile_in_place_writes_back_only_its_own_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two compiles of one bundle for two targets at once: the one for CPU read the bundle with the
    NPU blob of before, and must not write that back over the NPU blob the other wrote meanwhile."""
    bundle_dir = tmp_path / "b"
    shutil.copytree(DEFAULT, bundle_dir)
    bundle = read_bundle(bundle_dir)
    write_compiled(bundle_dir, replace(bundle, compiled={"NPU": _artefact(bundle, "NPU", b"before")}))
    compile_bundle = runtime.compiled.compile_bundle

    def with_the_other_compile_finishing(bundle: Bundle, *args: object, **kwargs: object) -> Bundle:
        compiled = compile_bundle(bundle, *args, **kwargs)  # type: ignore[arg-type]
        write_compiled(bundle_dir, replace(bundle, compiled={"NPU": _artefact(bundle, "NPU", b"after")}))
        return compiled

    monkeypatch.setattr(runtime.compiled, "compile_bundle", with_the_other_compile_finishing)
    assert main(["compile", "--model", str(bundle_dir), "--target", "CPU"]) == 0
    got = read_bundle(bundle_dir).compiled
    assert sorted(got) == ["CPU", "NPU"] and got["NPU"][1] == b"after"


def test_a_record_is_read_only_under_its_targets_name(tmp_path: Path) -> None:
    """A CPU pair kept aside as CPU.old.json / .blob would have been served as CPU's (it sorts later)."""
    bundle_dir = tmp_path / "b"
    shutil.copytree(DEFAULT, bundle_dir)
    bundle = read_bundle(bundle_dir)
    write_compiled(bundle_dir, replace(bundle, compiled={"CPU": _artefact(bundle, "CPU")}))
    for suffix in (".json", ".blob"):
        os.replace(bundle_dir / "compiled" / f"CPU{suffix}", bundle_dir / "compiled" / f"CPU.old{suffix}")
    with pytest.raises(BundleError, match=r"CPU.old.json is the record of CPU: a record is named after its target"):
        read_bundle(bundle_dir)


def test_two_artefacts_for_one_target_or_a_record_of_another_format_are_refused() -> None:
    bundle = read_bundle(DEFAULT)
    files = dict(bundle.files)
    twice = [_artefact(bundle, "CPU", b"one"), _artefact(bundle, "CPU", b"two")]
    with pytest.raises(BundleError, match="two compiled artefacts for CPU"):
        from_frames(bundle.manifest_bytes, files, compiled=twice)
    record, blob = _artefact(bundle, "CPU")
    later = json.dumps({**json.loads(record), "format": "vessel-compiled/2"}).encode()
    with pytest.raises(BundleError, match=r"format 'vessel-compiled/2'; this runtime reads \['vessel-compiled/1'\]"):
        from_frames(bundle.manifest_bytes, files, compiled=[(later, blob)])


def test_a_blob_the_plugin_refuses_is_compiled_with_the_plugins_own_reason(tmp_path: Path) -> None:
    """A CPU blob is imported only on the instruction set it was built for: a payload whose CPU has
    another (oneDNN held to SSE4.1 here) compiles the IR, and says why in the plugin's words, both
    instruction sets included, not only the last line of its message."""
    out = tmp_path / "b"
    _compile("--model", DEFAULT, "--target", "CPU", "--out", out)
    code = ("import json; from runtime.bundle import read_bundle; from runtime.device import open_device; "
            f"a = open_device(read_bundle({str(out)!r}), 'CPU', lambda *_: None, infer_requests=1); "
            "print(json.dumps(a.load)); a.close()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "ONEDNN_MAX_CPU_ISA": "SSE41"})
    assert proc.returncode == 0, proc.stderr
    load = json.loads(proc.stdout.strip().splitlines()[-1])
    assert load["how"] == "compiled", load
    detail = load["detail"]
    assert "Cannot import compiled blob" in detail and detail.count("isa=") == 2, detail
    assert "Exception from" not in detail, detail


class TwoGPUs(ov.Core):
    """A ground machine with two GPUs: OpenVINO lists only GPU.0 and GPU.1 (compiled on the CPU here)."""

    @property
    def available_devices(self) -> list[str]:
        return ["CPU", "GPU.0", "GPU.1"]

    def compile_model(self, model: Any, device: str, config: dict | None = None) -> Any:
        return super().compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})


def test_compile_takes_a_bare_family_as_the_runtime_does() -> None:
    """``--target GPU`` with only numbered GPUs listed: the runtime serves on ``GPU`` (OpenVINO picks
    the instance), so compile must not call it "not attached"; another instance suffix still is."""
    bundle = runtime.compiled.compile_bundle(read_bundle(DEFAULT), "GPU", core=TwoGPUs())
    assert json.loads(bundle.compiled["GPU"][0])["compiled_on"] == "GPU"
    with pytest.raises(ValueError, match=r"'GPU.7' is not a GPU attached here; valid: \['CPU', 'GPU.0', 'GPU.1'\]"):
        runtime.compiled.compile_bundle(read_bundle(DEFAULT), "GPU", "GPU.7", core=TwoGPUs())
