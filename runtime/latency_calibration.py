"""Calibration of the Myriad X cost model (:mod:`runtime.latency`): a design-time tool.

The runtime never imports this module. It builds reference networks with published Myriad X
latencies as ``ov.Model`` graphs from their published architectures, compares the cost model's
estimates with the published figures (in sample), fits the constants no document gives (least
squares on log latency, scipy's bounded Nelder-Mead), and checks the fit by leaving each
reference out in turn: refit on the others, predict the one left out. It writes everything to
``runtime/myriadx_calibration.json``, the one record of these figures, which the tests and
docs/devices.md read::

    .venv/bin/python -m runtime.latency_calibration            # rewrite the file (about a minute)
    .venv/bin/python -m runtime.latency_calibration --fit      # print refitted constants too

ResNet-18/50 (torchvision), MobileOne-S0 (re-parameterised inference form), YOLOv8n (ultralytics
yaml, head without box decoding) and the NitinJSanket encoder-decoders (``NCS-2/tf_model.py``) are
faithful; DeepLabV3 is an approximation (DeepLabV3+ with a MobileNetV2 backbone at output stride 16,
two classes and an arg-max, as in the Luxonis person-segmentation model; the exact Luxonis graph is
not published). The Luxonis figures include the USB 3 readback; the Sanket ones are over USB 2.0
with FP32 input and output.

Length: a design-time tool that the runtime never imports. Most of it is the reference networks'
graphs, written from their published architectures.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.latency import _price, _stack, estimate_latency, load_costs, model_work
from runtime.ov_api import Model

CALIBRATION_PATH = Path(__file__).with_name("myriadx_calibration.json")
COMMAND = ".venv/bin/python -m runtime.latency_calibration"


def _opsets() -> tuple[Any, Any]:
    from runtime.ov_api import opset

    return opset(8), opset(10)


class _Net:
    """A tiny graph builder for reference networks: FP16 throughout, zero weights (cost only)."""

    def __init__(self, shape: Sequence[int], input_type: str = "u8"):
        self.o8, self.o10 = _opsets()
        np_type = {"u8": np.uint8, "f32": np.float32, "f16": np.float16}[input_type]
        self.param = self.o8.parameter(list(shape), np_type, name="input")
        self.x = self.o8.convert(self.param, "f16")

    @staticmethod
    def shape(x: Any) -> list[int]:
        """Static shape of a node's first output or of an output handle."""
        return [int(d) for d in (x.get_output_shape(0) if hasattr(x, "get_output_shape") else x.get_shape())]

    @staticmethod
    def channels(x: Any) -> int:
        return _Net.shape(x)[1]

    def const(self, shape: Sequence[int]) -> Any:
        return self.o8.constant(np.zeros(shape, np.float16))

    def act(self, x: Any, kind: str | None) -> Any:
        if kind == "relu":
            return self.o8.relu(x)
        if kind == "relu6":
            return self.o8.clamp(x, 0.0, 6.0)
        if kind == "silu":
            return self.o8.swish(x, self.o8.constant(np.float16(1.0)))
        return x

    def conv(self, x: Any, cout: int, k: int = 3, s: int = 1, act: str | None = "relu", groups: int = 1,
             dilation: int = 1, bias: bool = True) -> Any:
        cin = self.channels(x)
        pad = dilation * (k - 1) // 2
        if groups == 1:
            y = self.o8.convolution(x, self.const([cout, cin, k, k]), [s, s], [pad, pad], [pad, pad], [dilation] * 2)
        else:
            y = self.o8.group_convolution(x, self.const([groups, cout // groups, cin // groups, k, k]), [s, s],
                                          [pad, pad], [pad, pad], [dilation] * 2)
        if bias:
            y = self.o8.add(y, self.const([1, cout, 1, 1]))
        return self.act(y, act)

    def dwconv(self, x: Any, k: int = 3, s: int = 1, act: str | None = "relu", dilation: int = 1) -> Any:
        c = self.channels(x)
        return self.conv(x, c, k, s, act, groups=c, dilation=dilation)

    def deconv(self, x: Any, cout: int, k: int, s: int, act: str | None = "relu") -> Any:
        # TF "same" for k=3, s=2 gives exactly 2x: pad one at the end
        pe = k - s if s > 1 else (k - 1) // 2
        pb = 0 if s > 1 else (k - 1) // 2
        y = self.o8.convolution_backprop_data(x, self.const([self.channels(x), cout, k, k]), [s, s],
                                              pads_begin=[pb, pb], pads_end=[pe, pe])
        return self.act(self.o8.add(y, self.const([1, cout, 1, 1])), act)

    def maxpool(self, x: Any, k: int, s: int, pad: int = 0) -> Any:
        return self.o8.max_pool(x, [s, s], [1, 1], [pad, pad], [pad, pad], [k, k]).output(0)

    def gap(self, x: Any) -> Any:
        return self.o8.reduce_mean(x, self.o8.constant(np.array([2, 3], np.int64)), keep_dims=True)

    def fc(self, x: Any, n: int) -> Any:
        flat = self.o8.reshape(x, self.o8.constant(np.array([1, -1], np.int64)), special_zero=False)
        k = self.shape(flat)[1]
        return self.o8.add(self.o8.matmul(flat, self.const([k, n]), False, False), self.const([1, n]))

    def resize(self, x: Any, size: Sequence[int], mode: str = "linear") -> Any:
        sizes = self.o8.constant(np.array(size, np.int64))
        scales = self.o8.constant(np.ones(2, np.float32))
        axes = self.o8.constant(np.array([2, 3], np.int64))
        if mode == "nearest":
            return self.o10.interpolate(x, sizes, scales, "nearest", "sizes", nearest_mode="floor",
                                        coordinate_transformation_mode="asymmetric", axes=axes)
        return self.o10.interpolate(x, sizes, scales, "linear", "sizes", coordinate_transformation_mode="align_corners",
                                    axes=axes)

    def concat(self, xs: Sequence[Any]) -> Any:
        return self.o8.concat(list(xs), 1)

    def model(self, outputs: Sequence[Any], name: str, output_type: str = "f16") -> Model:
        def etype(o: Any) -> str:
            node_type = o.get_output_element_type(0) if hasattr(o, "get_output_element_type") else o.get_element_type()
            return node_type.get_type_name()

        outs = [self.o8.convert(o, output_type) if output_type and etype(o) != output_type else o for o in outputs]
        return Model([self.o8.result(o) for o in outs], [self.param], name)


def resnet(depth: int, size: int = 224) -> Model:
    """torchvision ResNet-18/34 (basic blocks) or -50 (bottlenecks), 1000 classes, softmax."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    bottleneck = depth >= 50
    net = _Net([1, 3, size, size])
    x = net.maxpool(net.conv(net.x, 64, 7, 2), 3, 2, 1)
    for stage, n in enumerate(blocks):
        width = 64 * 2 ** stage
        for i in range(n):
            s = 2 if i == 0 and stage > 0 else 1
            cout = width * 4 if bottleneck else width
            if bottleneck:
                y = net.conv(net.conv(net.conv(x, width, 1), width, 3, s), cout, 1, act=None)
            else:
                y = net.conv(net.conv(x, width, 3, s), cout, 3, act=None)
            short = net.conv(x, cout, 1, s, act=None) if (s != 1 or net.channels(x) != cout) else x
            x = net.o8.relu(net.o8.add(y, short))
    logits = net.fc(net.gap(x), 1000)
    return net.model([net.o8.softmax(logits, 1)], f"resnet{depth}-{size}")


def mobileone_s0(size: int = 224) -> Model:
    """MobileOne-S0 after re-parameterisation: depthwise 3x3 + pointwise 1x1 blocks (Apple, 2022)."""
    net = _Net([1, 3, size, size])
    x = net.conv(net.x, 48, 3, 2)
    for width, n in ((48, 2), (128, 8), (256, 10), (1024, 1)):
        for i in range(n):
            x = net.conv(net.dwconv(x, 3, 2 if i == 0 else 1), width, 1)
    logits = net.fc(net.gap(x), 1000)
    return net.model([net.o8.softmax(logits, 1)], f"mobileone-s0-{size}")


#: MobileNetV2 inverted-residual stages: (expansion t, channels c, blocks n, first stride s).
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))


def _inverted_residual(net: _Net, x: Any, t: int, c: int, s: int, dilation: int = 1) -> Any:
    cin = net.channels(x)
    y = net.conv(x, cin * t, 1, act="relu6") if t != 1 else x
    y = net.conv(net.dwconv(y, 3, s, act="relu6", dilation=dilation), c, 1, act=None)
    return net.o8.add(x, y) if s == 1 and cin == c else y


def deeplabv3_mnv2(size: int = 256, classes: int = 2) -> Model:
    """Approximation of Luxonis' DeepLabV3: DeepLabV3+ / MobileNetV2, output stride 16, arg-max output."""
    net = _Net([1, 3, size, size])
    x = net.conv(net.x, 32, 3, 2, act="relu6")
    low = None
    dilation = 1
    for t, c, n, s in MOBILENET_V2:
        for i in range(n):
            stride = s if i == 0 else 1
            if stride == 2 and c == 160:  # output stride 16: this stride becomes a dilation
                stride, dilation = 1, 2
            x = _inverted_residual(net, x, t, c, stride, dilation if c >= 160 else 1)
        if c == 24:
            low = x
    h = net.shape(x)[2]
    pooled = net.resize(net.conv(net.gap(x), 256, 1), [h, h])
    aspp = net.conv(net.concat([pooled, net.conv(x, 256, 1)]), 256, 1)
    hl = net.shape(low)[2]
    y = net.concat([net.resize(aspp, [hl, hl]), net.conv(low, 48, 1)])
    for _ in range(2):
        y = net.conv(net.dwconv(y, 3), 256, 1)
    logits = net.resize(net.conv(y, classes, 1, act=None), [size, size])
    index = net.o8.topk(logits, 1, 1, "max", "none", "i32").output(1)
    return net.model([index], f"deeplabv3-mnv2-{size}", output_type="")


def _c2f(net: _Net, x: Any, cout: int, n: int, shortcut: bool) -> Any:
    c = cout // 2
    y = net.conv(x, 2 * c, 1, act="silu")
    parts = list(net.o8.split(y, net.o8.constant(np.int64(1)), 2).outputs())
    for _ in range(n):
        b = net.conv(net.conv(parts[-1], c, 3, act="silu"), c, 3, act="silu")
        parts.append(net.o8.add(parts[-1], b) if shortcut else b)
    return net.conv(net.concat(parts), cout, 1, act="silu")


def yolov8n(size: int = 416, classes: int = 80) -> Model:
    """YOLOv8n (ultralytics yolov8.yaml, scale n) with the three raw head outputs, no box decoding."""
    net = _Net([1, 3, size, size])
    conv = lambda x, c, k=3, s=1: net.conv(x, c, k, s, act="silu")  # noqa: E731
    x = conv(conv(net.x, 16, 3, 2), 32, 3, 2)
    x = _c2f(net, x, 32, 1, True)
    p3 = _c2f(net, conv(x, 64, 3, 2), 64, 2, True)
    p4 = _c2f(net, conv(p3, 128, 3, 2), 128, 2, True)
    x = _c2f(net, conv(p4, 256, 3, 2), 256, 1, True)
    y = conv(x, 128, 1)
    m1 = net.maxpool(y, 5, 1, 2)
    m2 = net.maxpool(m1, 5, 1, 2)
    p5 = conv(net.concat([y, m1, m2, net.maxpool(m2, 5, 1, 2)]), 256, 1)
    up = lambda t, ref: net.resize(t, net.shape(ref)[2:], "nearest")  # noqa: E731
    h4 = _c2f(net, net.concat([up(p5, p4), p4]), 128, 1, False)
    o3 = _c2f(net, net.concat([up(h4, p3), p3]), 64, 1, False)
    o4 = _c2f(net, net.concat([conv(o3, 64, 3, 2), h4]), 128, 1, False)
    o5 = _c2f(net, net.concat([conv(o4, 128, 3, 2), p5]), 256, 1, False)
    outs = []
    for level in (o3, o4, o5):
        box = net.conv(conv(conv(level, 64), 64), 64, 1, act=None)
        cls = net.conv(conv(conv(level, max(64, classes)), max(64, classes)), classes, 1, act=None)
        outs.append(net.concat([box, net.o8.sigmoid(cls)]))
    return net.model(outs, f"yolov8n-{size}")


def sanket_encoder_decoder(height: int, width: int, widths: Sequence[int]) -> Model:
    """NitinJSanket/prg_prgncs NCS-2/tf_model.py: residual encoder + transposed-conv decoder, FP32 I/O."""
    net = _Net([1, 1, height, width], input_type="f32")
    x = net.x
    for f in widths:
        y = net.conv(net.conv(x, f, 3), f, 3, act=None)
        short = x if net.channels(x) == f else net.conv(x, f, 1, act=None)
        x = net.maxpool(net.o8.relu(net.o8.add(y, short)), 2, 2)
    for f in reversed(widths):
        x = net.deconv(net.deconv(x, f, 3, 2), f, 3, 1)
    out = net.conv(x, 4, 3, act=None)
    return net.model([out], f"sanket-{height}x{width}-{widths[0]}-{widths[-1]}", output_type="f32")


def _sanket(height: int, width: int, first: int) -> Model:
    """The published Sanket variants: four levels doubling from ``first`` filters."""
    return sanket_encoder_decoder(height, width, tuple(first * 2 ** i for i in range(4)))


@dataclass(frozen=True)
class Reference:
    """A network with a published Myriad X latency."""

    name: str
    build: Callable[[], Model]
    published_ms: float
    link: str
    source: str

    def __post_init__(self) -> None:
        # Why: a NaN figure made every fit's loss NaN, so fit_costs returned the TOML's constants
        # unchanged as if fitted; 0 was a ZeroDivisionError, a negative figure a negative ratio.
        if isinstance(self.published_ms, bool) or not isinstance(self.published_ms, (int, float)) \
                or not math.isfinite(self.published_ms) or self.published_ms <= 0:
            raise ValueError(f"reference {self.name!r}: published_ms must be a finite number of ms > 0; "
                             f"got {self.published_ms!r}")


_LUXONIS = "Luxonis RVC2 NN performance table (docs.luxonis.com/software/ai-inference/performance), via myriadx.md"
_SANKET = "github NitinJSanket/prg_prgncs README, NCS2 over USB 2.0, via myriadx.md"

REFERENCES: tuple[Reference, ...] = (
    Reference("MobileOne-S0 224", mobileone_s0, 11.1, "usb3", _LUXONIS),
    Reference("ResNet-18 224", lambda: resnet(18), 19.7, "usb3", _LUXONIS),
    Reference("ResNet-50 224", lambda: resnet(50), 56.5, "usb3", _LUXONIS),
    Reference("DeepLabV3 256 (approx.)", lambda: deeplabv3_mnv2(256), 48.1, "usb3", _LUXONIS),
    Reference("DeepLabV3 513 (approx.)", lambda: deeplabv3_mnv2(513), 253.0, "usb3", _LUXONIS),
    Reference("YOLOv8n 416", lambda: yolov8n(416), 56.9, "usb3", _LUXONIS),
    Reference("YOLOv8n 640", lambda: yolov8n(640), 123.6, "usb3", _LUXONIS + " (same table; not in myriadx.md)"),
    Reference("Sanket 256x256 16..128", lambda: _sanket(256, 256, 16), 1000 / 7.5, "usb2", _SANKET),
    Reference("Sanket 256x256 8..64", lambda: _sanket(256, 256, 8), 1000 / 11.2, "usb2", _SANKET),
    Reference("Sanket 256x128 4..32", lambda: _sanket(256, 128, 4), 43.0, "usb2", _SANKET),
    Reference("Sanket 256x128 8..64", lambda: _sanket(256, 128, 8), 57.0, "usb2", _SANKET),
    Reference("Sanket 256x128 16..128", lambda: _sanket(256, 128, 16), 89.0, "usb2", _SANKET),
)


def calibration_table(costs: dict[str, Any] | None = None,
                      references: Sequence[Reference] = REFERENCES) -> list[dict[str, Any]]:
    """Published vs estimated latency of every reference network under ``costs``.

    Each row: name, published_ms, estimated_ms, ratio (estimated / published), gmacs, link, source.
    """
    rows = []
    for ref in references:
        est = estimate_latency(ref.build(), costs, link=ref.link)
        rows.append({"name": ref.name, "published_ms": ref.published_ms, "estimated_ms": round(est.total_ms, 2),
                     "ratio": round(est.total_ms / ref.published_ms, 3),
                     "gmacs": round(sum(la.macs for la in est.layers) / 1e9, 3), "link": ref.link, "source": ref.source})
    return rows


def format_calibration_table(rows: Sequence[dict[str, Any]]) -> str:
    """The table as fixed-width text (for the docstring and reports)."""
    lines = [f"{'reference':28s}  {'published':>9s}  {'estimated':>9s}  {'ratio':>5s}"]
    lines += [f"{r['name']:28s}  {r['published_ms']:9.1f}  {r['estimated_ms']:9.1f}  {r['ratio']:5.2f}" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Fitting the calibrated constants, and leaving each reference out
# --------------------------------------------------------------------------------------------------

#: The constants fitted to the references, with the physically plausible range searched.
FITTED: dict[tuple[str, ...], tuple[float, float]] = {
    ("nce", "cycles_per_s"): (2e8, 1.95e9),  # upper bound: "1 TOPS" / 2 / 256 [myriadx.md]
    ("nce", "tile_overhead_s"): (1e-7, 1e-4),
    ("memory", "ddr_bytes_per_s"): (1e9, 1.5e10),  # at most LPDDR4-3733 x32 (an inference)
    ("shave", "macs_per_s"): (1e9, 5e10),
    ("shave", "bytes_per_s"): (2e8, 2e10),
    ("overhead", "layer_s"): (1e-7, 5e-4),
    ("transfer", "latency_s"): (1e-6, 2e-3),
    ("transfer", "bytes_per_s", "usb3"): (5e7, 4.5e8),  # below the 5 Gbit/s signalling rate
    ("transfer", "bytes_per_s", "usb2"): (1e7, 4.5e7),  # below the 480 Mbit/s signalling rate
}

#: Fitter settings (recorded in the calibration file with its figures).
RESTARTS = 4
ITERATIONS_PER_RESTART = 1000
SEED = 0


def _get(costs: dict[str, Any], path: tuple[str, ...]) -> float:
    for key in path:
        costs = costs[key]
    return float(costs)  # type: ignore[arg-type]


def _set(costs: dict[str, Any], path: tuple[str, ...], value: float) -> None:
    for key in path[:-1]:
        costs = costs[key]
    costs[path[-1]] = value


class _Problem:
    """The references' graphs walked once; fits price them again under other constants."""

    def __init__(self, references: Sequence[Reference]):
        self.base = load_costs()
        self.references = list(references)
        self.stacks = [_stack(model_work(ref.build(), self.base, ref.link)) for ref in references]
        self.log_published = np.log([ref.published_ms / 1e3 for ref in references])
        self.lo = np.log([b[0] for b in FITTED.values()])
        self.hi = np.log([b[1] for b in FITTED.values()])

    def costs_at(self, z: np.ndarray) -> dict[str, Any]:
        c = copy.deepcopy(self.base)
        for path, value in zip(FITTED, np.exp(np.clip(z, self.lo, self.hi))):
            _set(c, path, float(value))
        return c

    def log_estimates(self, z: np.ndarray, which: Sequence[int]) -> np.ndarray:
        c = self.costs_at(z)
        return np.log([_price(self.stacks[i], c).sum() for i in which])

    def fit(self, which: Sequence[int]) -> np.ndarray:
        """Log-constants minimising the squared log ratios over the references ``which``."""
        from scipy.optimize import minimize  # a design-time dependency (the 'calibrate' extra)

        target = self.log_published[list(which)]

        def loss(z: np.ndarray) -> float:
            return float(np.sum((self.log_estimates(z, which) - target) ** 2))

        rng = np.random.default_rng(SEED)
        best = np.clip(np.array([math.log(_get(self.base, p)) for p in FITTED]), self.lo, self.hi)
        best_loss = loss(best)
        bounds = list(zip(self.lo, self.hi))
        for _ in range(RESTARTS):
            start = np.clip(best + rng.normal(0, 0.5, best.size), self.lo, self.hi)
            result = minimize(loss, start, method="Nelder-Mead", bounds=bounds,
                              options={"maxiter": ITERATIONS_PER_RESTART, "xatol": 1e-4, "fatol": 1e-8})
            if result.fun < best_loss:
                best, best_loss = result.x, float(result.fun)
        return best


def _require_references(items: Sequence[Any], least: int, what: str) -> None:
    """Refuse fewer than ``least`` references (or rows of them) for ``what``, with a ValueError
    saying how many it needs: numpy's own error on an empty list names nothing."""
    if len(items) < least:
        raise ValueError(f"{what} needs at least {least} reference(s); got {len(items)}")


def fit_costs(references: Sequence[Reference] = REFERENCES) -> dict[str, Any]:
    """The full cost dict with the :data:`FITTED` constants fitted to ``references``.

    Write the result into ``runtime/myriadx_costs.toml`` by hand, rounded, so that the constants
    stay reviewable; then rerun this module to rewrite the calibration file.

    Raises:
        ValueError: with fewer references than fitted constants (``len(FITTED)``): such a fit does
            not determine the constants (those no reference pins stay where the search started,
            at the TOML's values), so its result is no calibration to write into the TOML.
    """
    _require_references(references, len(FITTED), f"fitting the {len(FITTED)} constants of FITTED")
    problem = _Problem(references)
    return problem.costs_at(problem.fit(range(len(references))))


def leave_one_out(references: Sequence[Reference] = REFERENCES) -> list[dict[str, Any]]:
    """For each reference: refit the constants on all the others, then estimate it.

    The honest error of the cost model on a network it was not fitted to: each row has name,
    published_ms, estimated_ms (held out) and ratio (estimated / published).

    Raises:
        ValueError: with fewer than 2 references: with one, the "refit" would use none, leave the
            TOML's constants (fitted with that very reference) unchanged, and report the in-sample
            error as a held-out one.

    Warns:
        UserWarning: when each refit has fewer references than fitted constants: the figures then
            depend on the TOML's starting values more than on the references.
    """
    _require_references(references, 2, "leaving one reference out")
    if len(references) - 1 < len(FITTED):
        warnings.warn(f"leave_one_out with {len(references)} references refits the {len(FITTED)} constants of "
                      f"FITTED on {len(references) - 1} each: underdetermined, the held-out figures lean on "
                      "the TOML's starting values", UserWarning, stacklevel=2)
    problem = _Problem(references)
    rows = []
    for i, ref in enumerate(references):
        others = [j for j in range(len(references)) if j != i]
        z = problem.fit(others)
        est_ms = float(np.exp(problem.log_estimates(z, [i])[0]) * 1e3)
        rows.append({"name": ref.name, "published_ms": ref.published_ms, "estimated_ms": round(est_ms, 2),
                     "ratio": round(est_ms / ref.published_ms, 3)})
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Worst factor either way, range of ratios and RMS of log ratios over ``rows``.

    Raises:
        ValueError: if ``rows`` is empty (there is nothing to summarise) or a ratio is not a finite
            number > 0.
    """
    _require_references(rows, 1, "a summary of calibration rows")
    ratios = np.array([r["ratio"] for r in rows], dtype=np.float64)
    bad = [r.get("name", i) for i, r in enumerate(rows) if not (math.isfinite(float(r["ratio"])) and r["ratio"] > 0)]
    if bad:  # a NaN or inf ratio summarised to NaN/inf and was written into the calibration file
        raise ValueError(f"calibration rows {bad} have no finite ratio > 0; nothing to summarise")
    return {"max_factor": round(float(np.max(np.maximum(ratios, 1 / ratios))), 3),
            "min_ratio": round(float(ratios.min()), 3), "max_ratio": round(float(ratios.max()), 3),
            "rms_log": round(float(math.sqrt(np.mean(np.log(ratios) ** 2))), 3)}


def calibrate(references: Sequence[Reference] = REFERENCES) -> dict[str, Any]:
    """Everything the calibration file holds: in-sample table, leave-one-out, their summaries.

    Raises:
        ValueError: with fewer than 2 references (see :func:`leave_one_out`), before any is built.
    """
    _require_references(references, 2, "a calibration (its leave-one-out check)")
    in_sample = calibration_table(references=references)
    held_out = leave_one_out(references)
    return {
        "command": COMMAND,
        "date": time.strftime("%Y-%m-%d"),
        "costs": "runtime/myriadx_costs.toml",
        "fitted_constants": ["/".join(p) for p in FITTED],
        "fitter": {"method": "scipy.optimize.minimize Nelder-Mead, bounded", "restarts": RESTARTS,
                   "iterations_per_restart": ITERATIONS_PER_RESTART, "seed": SEED},
        "in_sample": {"rows": in_sample, **summary(in_sample)},
        "leave_one_out": {"rows": held_out, **summary(held_out)},
    }


def load_calibration(path: Path = CALIBRATION_PATH) -> dict[str, Any]:
    """The recorded calibration (what docs/devices.md and the tests quote)."""
    return json.loads(path.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.latency_calibration", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=CALIBRATION_PATH)
    parser.add_argument("--fit", action="store_true", help="also print constants refitted to every reference")
    args = parser.parse_args(argv)
    record = calibrate()
    args.out.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")  # never a bare NaN in the record
    print(format_calibration_table(record["in_sample"]["rows"]))
    print("in sample:", {k: v for k, v in record["in_sample"].items() if k != "rows"})
    print("leave one out:", {k: v for k, v in record["leave_one_out"].items() if k != "rows"})
    if args.fit:
        fitted = fit_costs()
        print(json.dumps({"/".join(p): _get(fitted, p) for p in FITTED}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
