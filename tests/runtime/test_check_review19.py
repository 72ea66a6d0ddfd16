"""``runtime check``: the twin's target, and models of unknown rank.

``--target myriadx-emu``: the twin is checked under the Myriad X's rules.

``runtime devices`` lists the twin, and a runtime that opens a model on it refuses what
``check_model(..., "MYRIAD")`` calls an error (runtime.device, MYRIAD_LIKE). Before 2026-12-05
``runtime check --target myriadx-emu`` was refused ("no rules for target"), so the ground could not
check a model for the device it would be served on in every test bench without a stick.

A model whose input has no known rank: the dynamic-shape rule says it is an error, but the rules that
read a convolution's or an Interpolate's dimensions raised OpenVINO's RuntimeError ("Check
'rank().is_static()' failed") first, and ``runtime check`` ended in a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest
from openvino import opset8 as ops
from openvino import opset10

from runtime.__main__ import main
from runtime.check import check_bundle_dir, check_model


def _deconv_bundle(folder: Path) -> Path:
    """A bundle folder (IR only) whose model the Myriad X cannot run: a ConvTranspose."""
    x = ops.parameter([1, 2, 16, 16], np.float32, name="x")
    w = ops.constant(np.ones((2, 2, 2, 2), np.float32))
    y = ops.convolution_backprop_data(x, w, strides=[2, 2], pads_begin=[0, 0], pads_end=[0, 0],
                                      dilations=[1, 1])
    ov.save_model(ov.Model([y], [x], "deconv"), str(folder / "model.xml"), compress_to_fp16=False)
    return folder


def test_the_twin_is_checked_under_the_myriad_rules(tmp_path: Path) -> None:
    bundle = _deconv_bundle(tmp_path)
    findings = check_bundle_dir(bundle, "myriadx-emu")
    assert findings == check_bundle_dir(bundle, "MYRIAD")
    assert any(f.severity == "error" and f.op_type == "ConvolutionBackpropData" for f in findings)


def test_runtime_check_on_the_twin_reports_the_error_and_fails(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _deconv_bundle(tmp_path)
    assert main(["check", "--model", str(bundle), "--target", "myriadx-emu"]) == 1
    assert "ConvolutionBackpropData" in capsys.readouterr().out


def test_a_target_with_no_rules_lists_the_twin_among_the_valid_ones(tmp_path: Path) -> None:
    model = ov.Model([ops.relu(p := ops.parameter([1, 2, 4, 4], np.float32))], [p])
    with pytest.raises(ValueError, match=r"'CPU'.*valid targets: \['MYRIAD', 'myriadx-emu'\]"):
        check_model(model, "CPU")


def _conv(x: ov.Node) -> ov.Node:
    return ops.convolution(x, ops.constant(np.ones((4, 2, 3, 3), np.float32)), [1, 1], [1, 1], [1, 1], [1, 1])


def _interpolate(x: ov.Node) -> ov.Node:
    sizes, scales = ops.constant(np.array([32, 32], np.int64)), ops.constant(np.array([1.0, 1.0], np.float32))
    return opset10.interpolate(x, sizes, scales, "nearest", "sizes", coordinate_transformation_mode="asymmetric",
                               nearest_mode="floor", axes=ops.constant(np.array([2, 3], np.int64)))


@pytest.mark.parametrize("op", [_conv, _interpolate], ids=["convolution", "interpolate"])
def test_an_input_of_unknown_rank_is_a_dynamic_shape_error_not_a_crash(
        op: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = ops.parameter(ov.PartialShape.dynamic(), np.float32, name="x")
    model = ov.Model([op(x)], [x], "unranked")  # type: ignore[operator]
    errors = [f for f in check_model(model) if f.severity == "error"]
    assert [(f.op_type, "dynamic shape" in f.message) for f in errors] == [("Parameter", True)], errors
    ov.save_model(model, str(tmp_path / "model.xml"), compress_to_fp16=False)
    assert main(["check", "--model", str(tmp_path), "--target", "MYRIAD"]) == 1
    assert "dynamic shape" in capsys.readouterr().out
