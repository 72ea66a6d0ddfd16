"""Review of the Myriad X cost model's fusion rules and its calibration's inputs (runtime/latency.py,
runtime/latency_calibration.py).

What the MYRIAD plugin (intel_myriad, 2022.3 lineage) merges into the stage before it, and what the
cost model therefore prices at nothing:

* into a hardware convolution: ReLU, Clamp with min 0, and a LeakyRelu whose 1/slope is an integer
  (merge_hw_stages.cpp); into any other hardware stage (fully connected, pooling): ReLU only;
* into the SHAVE eltwise kernels (Sum, Prod, Max, Min, Div, Squared_diff, Pow): ReLU, LeakyRelu and
  any Clamp (merge_eltwise_and_relu.cpp); Select is a stage of its own;
* a PRelu is a LeakyRelu only with a one-element slope (legacy ConvertPReLUToReLUIE); per channel, it
  is a PRelu stage (stages/prelu.cpp) that nothing merges;
* a bias or scale is the convolution's own only when it is per channel; an Add of a constant over the
  spatial axes is a SHAVE kernel that reads it.

Each was priced as free, or the other way round, before this review.
"""

from __future__ import annotations

import math

import numpy as np
import openvino as ov
import pytest
from openvino import opset8 as ops

from runtime.latency import estimate_latency
from runtime.latency_calibration import Reference, summary


def _conv(x: ov.Node, cout: int = 16) -> ov.Node:
    cin = x.get_output_partial_shape(0)[1].get_length()
    return ops.convolution(x, ops.constant(np.zeros((cout, cin, 3, 3), np.float32)), [1, 1], [1, 1], [1, 1], [1, 1])


def _x(shape: list[int] | None = None) -> ov.Node:
    return ops.parameter(shape or [1, 16, 64, 64], np.float32, name="x")


def _types(model: ov.Model) -> list[str]:
    """The op types the estimate prices on the device (transfers left out)."""
    return [la.type for la in estimate_latency(model).layers if la.unit != "transfer"]


@pytest.mark.parametrize("slope", [0.0, 0.5, 0.25])
def test_leaky_relu_with_an_integer_reciprocal_slope_fuses_into_a_convolution(slope: float) -> None:
    x = _x()
    y = ops.prelu(_conv(x), ops.constant(np.float32([slope])))
    assert _types(ov.Model([y], [x])) == ["Convolution"]


@pytest.mark.parametrize("slope", [np.float32([0.3]), np.full((16, 1, 1), 0.25, np.float32)],
                         ids=["scalar 0.3", "per channel"])
def test_prelu_the_hardware_cannot_apply_is_a_shave_kernel(slope: np.ndarray) -> None:
    """1/0.3 is not an integer (merge_hw_stages.cpp: "Only integer scales are supported"); a
    per-channel PRelu is a stage of its own. Both were priced as free."""
    x = _x()
    est = estimate_latency(ov.Model([ops.prelu(_conv(x), ops.constant(slope))], [x]))
    (prelu,) = [la for la in est.layers if la.type == "PRelu"]
    assert prelu.unit == "shave" and prelu.ms > 0


def test_only_relu_fuses_into_a_fully_connected_layer() -> None:
    """mergeHwStages merges Clamp and LeakyRelu into hardware convolutions only."""
    x = ops.parameter([1, 256], np.float32, name="x")
    fc = lambda: ops.matmul(x, ops.constant(np.zeros((256, 128), np.float32)), False, False)  # noqa: E731
    assert _types(ov.Model([ops.relu(fc())], [x])) == ["MatMul"]
    assert _types(ov.Model([ops.clamp(fc(), 0.0, 6.0)], [x])) == ["MatMul", "Clamp"]


def test_relu_fuses_into_hardware_pooling() -> None:
    x = _x()
    pool = ops.max_pool(x, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2]).output(0)
    assert _types(ov.Model([ops.relu(pool)], [x])) == ["MaxPool"]


def test_any_clamp_fuses_into_an_eltwise_kernel_but_nothing_into_select() -> None:
    x = _x()
    added = ops.add(ops.sigmoid(x), ops.tanh(x))
    assert _types(ov.Model([ops.clamp(added, -1.0, 1.0)], [x])) == ["Sigmoid", "Tanh", "Add"]
    mask = ops.constant(np.ones((1, 16, 64, 64), bool))
    selected = ops.select(mask, ops.sigmoid(x), ops.tanh(x))
    assert _types(ov.Model([ops.relu(selected)], [x])) == ["Sigmoid", "Tanh", "Select", "Relu"]


def test_a_constant_over_the_spatial_axes_is_not_a_bias() -> None:
    """Only a per-channel constant is the convolution's bias; a [1, C, H, W] one was priced as free
    (and its bytes never read)."""
    x = _x()
    per_channel = ops.add(_conv(x), ops.constant(np.zeros((1, 16, 1, 1), np.float32)))
    assert _types(ov.Model([ops.relu(per_channel)], [x])) == ["Convolution"]
    full = ops.add(_conv(x), ops.constant(np.zeros((1, 16, 64, 64), np.float32)))
    est = estimate_latency(ov.Model([full], [x]))
    (add,) = [la for la in est.layers if la.type == "Add"]
    assert add.unit == "shave" and add.bytes == 3 * 16 * 64 * 64 * 2  # activation, constant, output in FP16


@pytest.mark.parametrize("shipped", ["models/sar", "models/default", "models/optical"])
def test_shipped_estimates_keep_their_figures(shipped: str) -> None:
    """The rules above touch no op of the shipped models (README, docs/models.md quote these)."""
    want = {"models/sar": 29.3788, "models/default": 33.142, "models/optical": 28.0285}[shipped]
    est = estimate_latency(ov.Core().read_model(f"{shipped}/model.xml"))
    assert est.total_ms == pytest.approx(want, abs=1e-3)


@pytest.mark.parametrize("published", [float("nan"), float("inf"), 0.0, -5.0, "12"])
def test_a_reference_needs_a_finite_positive_published_figure(published: object) -> None:
    """A NaN figure made every fit's loss NaN and fit_costs returned the TOML's constants as fitted;
    0 raised a bare ZeroDivisionError; a negative figure gave a negative ratio."""
    with pytest.raises(ValueError, match="published_ms must be a finite number"):
        Reference("r", lambda: None, published, "usb3", "test")  # type: ignore[arg-type]


@pytest.mark.parametrize("ratio", [float("nan"), float("inf"), 0.0])
def test_summary_refuses_a_ratio_that_is_not_finite_and_positive(ratio: float) -> None:
    with pytest.raises(ValueError, match="no finite ratio"):
        summary([{"name": "a", "ratio": 1.0}, {"name": "b", "ratio": ratio}])
    assert math.isfinite(summary([{"name": "a", "ratio": 1.2}])["rms_log"])


def test_an_fp16_compressed_slope_is_read_through_its_convert(tmp_path) -> None:
    """An IR saved with compress_to_fp16 holds the slope as Convert(Constant f16)."""
    x = _x()
    model = ov.Model([ops.prelu(_conv(x), ops.constant(np.float32([0.25])))], [x], "leaky")
    ov.save_model(model, tmp_path / "m.xml", compress_to_fp16=True)
    read = ov.Core().read_model(tmp_path / "m.xml")
    assert "Convert" in [op.get_type_name() for op in read.get_ordered_ops()]
    assert _types(read) == ["Convolution"]
