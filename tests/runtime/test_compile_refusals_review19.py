"""``runtime compile`` on an IR the plugin will not compile: a one-line error naming the plugin's
reason, exit status 2 and no blob written, not a Python traceback.

Found by a review of 2026-12-05: the CPU plugin's RuntimeError (here a Parameter of dynamic rank,
which OpenVINO reads but the CPU plugin refuses; on the ground a MYRIAD stick refusing an op is the
same path) escaped compile_bundle and ``runtime compile`` ended in a traceback of OpenVINO's source
files. Each test here failed on the code before the fix.
"""

from __future__ import annotations

from pathlib import Path

import openvino as ov
import pytest

from runtime import ov_api
from runtime.__main__ import main
from runtime.bundle import read_bundle, rewritable_manifest, write_bundle
from runtime.compiled import compile_bundle

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "models" / "default"


def _dynamic_rank_bundle(tmp_path: Path) -> Path:
    """models/default's manifest over a real IR of dynamic rank: OpenVINO reads it, the CPU plugin refuses it."""
    op = ov_api.opset(13)
    image = op.parameter(ov.PartialShape.dynamic(), ov_api.Type.f32)
    image.output(0).get_tensor().set_names({"image"})
    ov_api.save_ir(ov_api.Model([op.sigmoid(image)], [image]), tmp_path / "ir" / "model.xml")
    out = tmp_path / "dynamic"
    write_bundle(out, (tmp_path / "ir" / "model.xml").read_bytes(), (tmp_path / "ir" / "model.bin").read_bytes(),
                 rewritable_manifest(read_bundle(DEFAULT)))
    return out


def test_compile_bundle_says_why_the_plugin_refused(tmp_path: Path) -> None:
    bundle = read_bundle(_dynamic_rank_bundle(tmp_path))
    with pytest.raises(ValueError, match="CPU cannot compile this bundle's IR into a blob: .*dynamic rank") as info:
        compile_bundle(bundle, "CPU")
    assert "Exception from src/" not in str(info.value)  # the plugin's reason, not its trace


def test_runtime_compile_of_a_refused_ir_is_an_error_not_a_traceback(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bundle_dir = _dynamic_rank_bundle(tmp_path)
    assert main(["compile", "--model", str(bundle_dir), "--target", "CPU"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CPU cannot compile") and "dynamic rank" in err and len(err.splitlines()) == 1
    assert not (bundle_dir / "compiled").exists()
