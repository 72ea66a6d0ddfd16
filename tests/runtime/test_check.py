"""Tests for runtime.check: tiny graphs with one known Myriad X problem each, and clean ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest
from openvino import opset8 as ops
from openvino import opset10, opset11

from runtime.bundle import BundleError
from runtime.check import Finding, check_bundle_dir, check_model

DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"
AXES = np.array([2, 3], np.int64)


def x_param() -> ov.Node:
    return ops.parameter([1, 4, 16, 16], np.float32, name="x")


def model_of(build) -> ov.Model:
    x = x_param()
    return ov.Model([build(x)], [x], "probe")


def conv(x: ov.Node, stride: int = 1, dilation: int = 1, k: int = 3) -> ov.Node:
    w = ops.constant(np.zeros((4, 4, k, k), np.float32))
    pad = dilation * (k - 1) // 2
    return ops.convolution(x, w, [stride, stride], [pad, pad], [pad, pad], [dilation, dilation])


def interpolate4(x: ov.Node, mode: str, coord: str, nearest: str = "round_prefer_floor") -> ov.Node:
    sizes, scales = ops.constant(np.array([32, 32], np.int64)), ops.constant(np.array([2.0, 2.0], np.float32))
    return opset10.interpolate(x, sizes, scales, mode, "sizes", coordinate_transformation_mode=coord,
                               nearest_mode=nearest, axes=ops.constant(AXES))


def only(findings: list[Finding], severity: str) -> list[Finding]:
    return [f for f in findings if f.severity == severity]


def test_interpolate_11_is_an_error_naming_opset11() -> None:
    scales = ops.constant(np.array([2.0, 2.0], np.float32))
    model = model_of(lambda x: opset11.interpolate(x, scales, "nearest", "scales", nearest_mode="floor",
                                                   coordinate_transformation_mode="asymmetric", axes=ops.constant(AXES)))
    errors = only(check_model(model), "error")
    assert len(errors) == 1 and errors[0].op_type == "Interpolate"
    assert "opset11" in errors[0].message and errors[0].source


def test_half_pixel_linear_interpolate_4_is_a_remap_warning() -> None:
    findings = check_model(model_of(lambda x: interpolate4(x, "linear", "half_pixel")))
    assert [(f.severity, f.op_type) for f in findings] == [("warning", "Interpolate")]
    assert "remapped" in findings[0].message


@pytest.mark.parametrize("mode,coord,nearest", [("linear", "asymmetric", "round_prefer_floor"),
                                                ("linear", "align_corners", "round_prefer_floor"),
                                                ("nearest", "asymmetric", "floor"),
                                                ("nearest", "half_pixel", "round_prefer_ceil")])
def test_native_interpolate_modes_have_no_finding(mode: str, coord: str, nearest: str) -> None:
    assert check_model(model_of(lambda x: interpolate4(x, mode, coord, nearest))) == []


def test_nearest_with_other_rounding_is_remapped() -> None:
    findings = check_model(model_of(lambda x: interpolate4(x, "nearest", "asymmetric", "round_prefer_floor")))
    assert [f.severity for f in findings] == ["warning"]


def test_dilated_convolution_is_a_warning() -> None:
    findings = check_model(model_of(lambda x: conv(x, dilation=2)))
    assert [(f.severity, f.op_type) for f in findings] == [("warning", "Convolution")]
    assert "SHAVE" in findings[0].message


def test_convolution_backprop_data_is_an_error() -> None:
    w = ops.constant(np.zeros((4, 4, 2, 2), np.float32))
    findings = check_model(model_of(lambda x: ops.convolution_backprop_data(x, w, [2, 2])))
    assert [(f.severity, f.op_type) for f in findings] == [("error", "ConvolutionBackpropData")]


def test_convolution_outside_hardware_limits_is_a_warning() -> None:
    assert [f.severity for f in check_model(model_of(lambda x: conv(x, k=17)))] == ["warning"]
    w = ops.constant(np.zeros((4, 4, 3, 3), np.float32))
    unequal = check_model(model_of(lambda x: ops.convolution(x, w, [1, 2], [1, 1], [1, 1], [1, 1])))
    assert [f.severity for f in unequal] == ["warning"] and "unequal" in unequal[0].message


def test_dynamic_shape_is_an_error() -> None:
    x = ops.parameter([1, 4, -1, -1], np.float32)
    findings = check_model(ov.Model([ops.relu(x)], [x]))
    assert [(f.severity, f.op_type) for f in findings] == [("error", "Parameter")]


@pytest.mark.parametrize("kind, finding", [(np.float32, False), (np.float16, False), (np.uint8, False),
                                            (np.uint16, True), (np.int8, True), (np.int16, True)])
def test_an_input_type_the_myriad_plugin_does_not_take_is_a_warning(kind: type, finding: bool) -> None:
    """U16 (and I8, I16) inputs: no MYRIAD data type holds them (sourced); a warning, since the
    twin must still run the 16-bit studies' models."""
    x = ops.parameter([1, 4, 16, 16], kind, name="x")
    found = check_model(ov.Model([ops.relu(ops.convert(x, np.float32))], [x]))
    assert [(f.severity, f.op_type, f.op_name) for f in found] == ([("warning", "Parameter", "x")] if finding else [])
    if finding:
        assert "Supported Input Precision" in found[0].source and "uint8" in found[0].message


def test_clean_convolution_network_has_no_findings() -> None:
    model = model_of(lambda x: ops.sigmoid(ops.relu(conv(ops.relu(conv(x, stride=2))))))
    assert check_model(model) == []


def test_unknown_target_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="MYRIAD"):
        check_model(model_of(conv), target="NPU")


def test_a_numbered_device_is_checked_under_its_family_rules() -> None:
    """``runtime devices`` lists ``MYRIAD.1.2-ma2480``; ``runtime check --target`` with that name
    was refused as a target with no rules, while the runtime opening a model there checks it."""
    model = model_of(lambda x: conv(x, dilation=2))
    assert check_model(model, target="MYRIAD.1.2-ma2480") == check_model(model, target="MYRIAD") != []
    with pytest.raises(ValueError, match="MYRIAD"):
        check_model(model, target="NPU.0")


def test_check_bundle_dir(tmp_path: Path) -> None:
    ov.save_model(model_of(lambda x: conv(x, dilation=2)), tmp_path / "model.xml", compress_to_fp16=True)
    assert [f.severity for f in check_bundle_dir(tmp_path)] == ["warning"]
    with pytest.raises(BundleError, match="missing: not a bundle directory"):  # a ValueError: `error: ...`
        check_bundle_dir(tmp_path / "missing")


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "model.xml").is_file(), reason="no default flight model in models/default")
def test_default_flight_model_has_no_errors() -> None:
    assert only(check_bundle_dir(DEFAULT_BUNDLE), "error") == []


def test_interpolate_with_pads_or_over_channels_is_an_error() -> None:
    """The 2022.3 MYRIAD frontend (intel_myriad stages/interpolate.cpp, the file myriadx.md cites for
    Interpolate) throws "Current Interpolate does not support paddings" and "... does not support
    resize by channels": both compiled on the twin and passed the check without a word."""
    def padded(x: ov.Node) -> ov.Node:
        return opset10.interpolate(x, ops.constant(np.array([36, 36], np.int64)),
                                   ops.constant(np.array([2.0, 2.0], np.float32)), "nearest", "sizes",
                                   pads_begin=[0, 0, 1, 1], pads_end=[0, 0, 1, 1],
                                   coordinate_transformation_mode="asymmetric", nearest_mode="floor",
                                   axes=ops.constant(AXES))

    def over_channels(x: ov.Node) -> ov.Node:
        return opset10.interpolate(x, ops.constant(np.array([8], np.int64)), ops.constant(np.array([2.0], np.float32)),
                                   "nearest", "sizes", coordinate_transformation_mode="asymmetric",
                                   nearest_mode="floor", axes=ops.constant(np.array([1], np.int64)))

    for build, words in ((padded, "pads"), (over_channels, "channels")):
        errors = only(check_model(model_of(build)), "error")
        assert [f.op_type for f in errors] == ["Interpolate"] and words in errors[0].message, errors
    assert check_model(model_of(lambda x: interpolate4(x, "nearest", "asymmetric", "floor"))) == []
