"""What a target device cannot run, or runs differently from what the IR says, found before flight.

Why: the Myriad X toolchain fails late (at compile time on the stick) or, worse, not at all: it
remaps Interpolate coordinate modes and moves convolutions to its slow SHAVE cores without a word.
``check_model`` walks an ``ov.Model`` and reports each such op as a :class:`Finding`, with the
document the rule comes from. The rules are a table (:data:`RULES`), one per target; limits shared
with the latency model (stride, kernel, channels) are read from ``myriadx_costs.toml``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runtime import nce
from runtime.bundle import IR_FILES, BundleError
from runtime.device_names import MYRIAD_LIKE, TWINS, device_family
from runtime.latency import load_costs
from runtime.ov_api import Model, read_ir
from runtime.profiles import get_profile

SEVERITIES = ("error", "warning", "info")
#: The OpenVINO 2022.3 toolkit, the last with the MYRIAD plugin, reads ops up to this opset.
MAX_OPSET = 10


def _native_interpolate() -> frozenset[tuple[str, str, str | None]]:
    """(mode, coordinate_transformation_mode, nearest_mode or None) the VPU runs as written; anything
    else among nearest/linear is silently translated to a default [intel_myriad stages/interpolate.cpp].

    Read from the Myriad X twin's profile (``[ops.interpolate]`` of profiles.toml, where the source
    and status of the fact are kept), so the check and the twin cannot disagree.
    """
    rules = get_profile(TWINS["myriadx-emu"]).ops.interpolate
    assert rules is not None, "the Myriad X profile must say which Interpolate modes are native"
    return frozenset({("nearest", coord, nearest) for coord, nearest in rules.native_nearest}
                     | {(mode, coord, None) for mode in ("linear", "linear_onnx") for coord in rules.native_linear})


NATIVE_INTERPOLATE = _native_interpolate()
CONVOLUTIONS = ("Convolution", "GroupConvolution")
DECONVOLUTIONS = ("ConvolutionBackpropData", "GroupConvolutionBackpropData")

_SRC_OPSET = "myriadx.md, Software availability: 2022.3.2 rejects opset11 ('unsupported opset'; checked)"
_SRC_INTERP = "myriadx.md, Interpolate [intel_myriad graph_transformer stages/interpolate.cpp, 2022.3]"
_SRC_CONV = "myriadx.md, Numerics: hardware convolution limits [vpu stages/convolution.cpp]"
_SRC_DECONV = "myriadx.md: ConvTranspose is listed as unsupported in VPU.md"
_SRC_CHANNELS = "myriadx.md, Plugin hardware limits: <= 2048 in/out channels [vpu hw/tiling.hpp]"
_SRC_DEPTHWISE = "myriadx.md: depthwise rewritten as block-diagonal dense conv [split_hw_depth_convolution.cpp]"
_SRC_DYNAMIC = "inference: a MYRIAD blob has fixed tensor sizes; myriadx.md lists no dynamic-shape support"
_SRC_INPUT = ("OpenVINO 2022 docs, Supported_Devices.md, Supported Input Precision: VPU plugins take FP32, FP16 "
              "and U8, not U16, I8 or I16; intel_myriad vpu/model/data_desc.hpp: the graph's data types are FP16, "
              "U8, S32, FP32 and I8 (sourced, not tried on a stick)")
#: Input element types the MYRIAD plugin takes (:data:`_SRC_INPUT`).
MYRIAD_INPUT_TYPES = ("f32", "f16", "u8")


@dataclass(frozen=True)
class Finding:
    """One thing the target cannot run or runs differently, and where that fact comes from."""

    severity: str  # "error" | "warning" | "info"
    op_name: str
    op_type: str
    message: str
    source: str

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict, for reports and manifests."""
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    """A check on one op: ``test`` returns a message when the op breaks the rule, else None."""

    id: str
    severity: str
    op_types: tuple[str, ...] | None  # None: every op
    test: Callable[[Any, dict[str, Any]], str | None]
    source: str


# -- rule tests ------------------------------------------------------------------------------------


def opset_of(node: Any) -> str:
    """The opset an op comes from, e.g. ``"opset11"`` (``get_type_info().version_id``)."""
    info = node.get_type_info()
    version = getattr(info, "version_id", None)
    if version is None:  # pragma: no cover - very old bindings expose only the op version number
        version = f"v{node.get_version()}"
    return str(version)


def _too_new_opset(node: Any, limits: dict[str, Any]) -> str | None:
    version = opset_of(node)
    match = re.fullmatch(r"opset(\d+)", version)
    if match is None:
        return f"comes from {version!r}, not a standard opset; the 2022.3 MYRIAD toolkit may not read it"
    if int(match.group(1)) > MAX_OPSET:
        is_interpolate = node.get_type_name() == "Interpolate"
        hint = " (torch interpolate / ONNX Resize export as Interpolate-11)" if is_interpolate else ""
        return (f"{node.get_type_name()} from {version}{hint}: the OpenVINO 2022.3 toolkit, the last with the "
                f"MYRIAD plugin, reads opset1..opset{MAX_OPSET} only and rejects the IR")
    return None


def _interpolate_not_implemented(node: Any, limits: dict[str, Any]) -> str | None:
    attrs = node.get_attributes()
    mode = attrs.get("mode")
    if mode not in ("nearest", "linear", "linear_onnx"):
        return f"mode {mode!r}: the VPU implements only nearest and linear"
    # The same frontend throws on these before it looks at the coordinate mode [interpolate.cpp].
    if any(attrs.get("pads_begin", [])) or any(attrs.get("pads_end", [])):
        return "pads_begin/pads_end not zero: the MYRIAD plugin refuses an Interpolate with paddings"
    data, out = node.input(0).get_partial_shape(), node.get_output_partial_shape(0)
    if not (data.rank.is_static and out.rank.is_static):
        return None  # reported by the dynamic-shape rule
    channels = {4: 1, 3: 0}.get(len(data))  # the plugin's Dim::C of NCHW/NHWC and CHW/HWC (IR order: C first)
    if channels is not None and data[channels].is_static and out[channels].is_static \
            and data[channels].get_length() != out[channels].get_length():
        return "resizes the channels axis: the MYRIAD plugin refuses an Interpolate that resizes channels"
    return None


def _interpolate_remapped(node: Any, limits: dict[str, Any]) -> str | None:
    attrs = node.get_attributes()
    mode = attrs.get("mode")
    if mode not in ("nearest", "linear", "linear_onnx"):
        return None  # reported as not implemented
    if "coordinate_transformation_mode" not in attrs:  # Interpolate-1: align_corners flag only
        if mode == "nearest" or attrs.get("align_corners"):
            return None
        return ("Interpolate-1 linear without align_corners: the VPU runs linear only with align_corners or "
                "asymmetric coordinates; check which one this becomes")
    coord = attrs["coordinate_transformation_mode"]
    nearest = attrs.get("nearest_mode") if mode == "nearest" else None
    problems = []
    if (mode, coord, nearest) not in NATIVE_INTERPOLATE:
        what = f"{mode}, {coord}" + (f", {nearest}" if nearest else "")
        native = sorted(f"{m}/{c}" + (f"/{n}" if n else "") for m, c, n in NATIVE_INTERPOLATE if m == mode)
        problems.append(f"({what}) is not native on the VPU: it may be remapped silently to a default (unknown "
                        f"whether the firmware honours it or remaps it, to asymmetric or align_corners); native for "
                        f"{mode}: {native}")
    if attrs.get("antialias"):
        problems.append("antialias: nothing known says the VPU implements it (hypothesis: check on the device)")
    return "; ".join(problems) or None


def _ranks_known(node: Any) -> bool:
    """Whether every input of ``node`` has a known rank. A rule that reads dimensions passes over one
    that has not: the ``dynamic-shape`` rule reports it (reading them raised OpenVINO's RuntimeError,
    and ``runtime check`` ended in a traceback, not the finding)."""
    return all(node.input(i).get_partial_shape().rank.is_static for i in range(node.get_input_size()))


def _conv_geometry(node: Any) -> tuple[int, list[int], list[int], list[int]] | None:
    """(rank, strides, dilations, kernel) of a convolution; None when a rank or the weights' shape is
    not known (see :func:`_ranks_known`)."""
    attrs = node.get_attributes()
    if not (_ranks_known(node) and node.input(1).get_partial_shape().is_static):
        return None
    rank = len(node.input(0).get_partial_shape())
    weights = [int(d) for d in node.input(1).get_partial_shape().to_shape()]
    kernel = weights[-(rank - 2):] if rank > 2 else []
    return rank, list(attrs.get("strides", [])), list(attrs.get("dilations", [])), kernel


def _dilated(node: Any, limits: dict[str, Any]) -> str | None:
    geometry = _conv_geometry(node)
    if geometry is None:
        return None
    _, _, dilations, _ = geometry
    reason = nce.dilated(dilations, limits)
    if reason:
        return (f"{reason}: runs in software on the SHAVE cores (MYRIAD_HW_DILATION is off by "
                "default), many times slower than the NCE")
    return None


def _outside_hw_limits(node: Any, limits: dict[str, Any]) -> str | None:
    geometry = _conv_geometry(node)
    if geometry is None:
        return None
    _, strides, _, kernel = geometry
    problems = nce.outside_limits(strides, kernel, limits)
    if problems:
        return "; ".join(problems) + ": outside the NCE limits, runs in software on the SHAVE cores"
    return None


def _not_4d(node: Any, limits: dict[str, Any]) -> str | None:
    if not _ranks_known(node):
        return None
    reason = nce.not_4d(len(node.input(0).get_partial_shape()))
    if reason:
        return f"{reason}: this convolution runs in software on the SHAVEs"
    return None


def _too_many_channels(node: Any, limits: dict[str, Any]) -> str | None:
    if not (_ranks_known(node) and node.get_output_partial_shape(0).rank.is_static):
        return None
    cin, cout = node.input(0).get_partial_shape()[1], node.get_output_partial_shape(0)[1]
    big = [f"{name} {d.get_length()}" for name, d in (("input channels", cin), ("output channels", cout))
           if d.is_static and d.get_length() > limits["max_channels"]]
    if big:
        return f"{', '.join(big)} > {limits['max_channels']} per hardware op: split into tiles, slower"
    return None


def _deconvolution(node: Any, limits: dict[str, Any]) -> str | None:
    return (f"{node.get_type_name()} (ConvTranspose) is listed as unsupported on the VPU; upsample with "
            "nearest Interpolate or a copy (Broadcast + Reshape) followed by a convolution instead")


def _depthwise(node: Any, limits: dict[str, Any]) -> str | None:
    w = node.input(1).get_partial_shape()
    shape = [int(d) for d in w.to_shape()] if w.is_static else []
    if len(shape) == 5 and shape[1] == 1 and shape[2] == 1:
        return ("depthwise convolution: the NCE runs it as dense convolutions with block-diagonal weights, so "
                "most of its MACs multiply zeros; far slower than its MAC count suggests")
    return None


def _dynamic_shape(node: Any, limits: dict[str, Any]) -> str | None:
    inputs_static = all(node.input(i).get_partial_shape().is_static for i in range(node.get_input_size()))
    outputs = [node.get_output_partial_shape(i) for i in range(node.get_output_size())]
    dynamic = [str(s) for s in outputs if not s.is_static]
    # report where dynamism starts (a Parameter, or an op with a data-dependent output), not everywhere
    if dynamic and (node.get_type_name() == "Parameter" or inputs_static):
        return f"dynamic shape {dynamic[0]}: the MYRIAD plugin compiles static shapes only; reshape the model"
    return None


def _input_type(node: Any, limits: dict[str, Any]) -> str | None:
    kind = node.get_output_element_type(0).get_type_name()
    if kind in MYRIAD_INPUT_TYPES:
        return None
    return (f"a {kind} input: the MYRIAD plugin takes {list(MYRIAD_INPUT_TYPES)} inputs and has no {kind} data "
            f"type, so a stick would most likely refuse this IR; for the stick, take uint8 counts or float32. "
            f"The twin runs it (a study of such counts on the device's arithmetic, not a flight model)")


RULES: dict[str, tuple[Rule, ...]] = {
    "MYRIAD": (
        Rule("opset", "error", None, _too_new_opset, _SRC_OPSET),
        Rule("dynamic-shape", "error", None, _dynamic_shape, _SRC_DYNAMIC),
        # A warning, though a stick would most likely refuse such an IR: the twin refuses errors, and the
        # 16-bit studies (configs/ablate-u16*.toml) run uint16 models on it on purpose.
        Rule("input-type", "warning", ("Parameter",), _input_type, _SRC_INPUT),
        Rule("deconvolution", "error", DECONVOLUTIONS, _deconvolution, _SRC_DECONV),
        Rule("interpolate-mode", "error", ("Interpolate",), _interpolate_not_implemented, _SRC_INTERP),
        Rule("interpolate-remapped", "warning", ("Interpolate",), _interpolate_remapped, _SRC_INTERP),
        Rule("dilated-conv", "warning", CONVOLUTIONS, _dilated, _SRC_CONV),
        Rule("conv-hw-limits", "warning", CONVOLUTIONS, _outside_hw_limits, _SRC_CONV),
        Rule("conv-not-4d", "warning", CONVOLUTIONS, _not_4d, _SRC_CONV),
        Rule("conv-channels", "warning", CONVOLUTIONS, _too_many_channels, _SRC_CHANNELS),
        Rule("depthwise", "info", ("GroupConvolution",), _depthwise, _SRC_DEPTHWISE),
    ),
}


def _limits() -> dict[str, Any]:
    nce = load_costs()["nce"]
    return {key: nce[key] for key in ("max_stride", "max_kernel", "max_channels", "hw_dilation")}


def check_model(model: Model, target: str = "MYRIAD") -> list[Finding]:
    """Every op of ``model`` that ``target`` cannot run, or runs differently, most severe first.

    ``target`` may name one device as ``runtime devices`` lists it (``MYRIAD.1.2-ma2480``): its
    family's rules apply, as they do when the runtime opens a model on it. The Myriad X twin
    (``myriadx-emu``) is checked under ``MYRIAD``'s rules, as the runtime checks a model it opens
    there (:data:`runtime.device_names.MYRIAD_LIKE`): refused as a target with no rules, a model the
    twin would refuse to load passed ``runtime check --target myriadx-emu`` only by not being checked.

    Raises:
        ValueError: if ``target`` has no rules, listing the targets that have.
    """
    family = device_family(target)
    target = "MYRIAD" if family in MYRIAD_LIKE else family
    if target not in RULES:
        valid = sorted({*RULES, *MYRIAD_LIKE})
        raise ValueError(f"no rules for target {family!r}; valid targets: {valid}")
    limits = _limits()
    findings = []
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        for rule in RULES[target]:
            if rule.op_types is not None and kind not in rule.op_types:
                continue
            message = rule.test(node, limits)
            if message:
                findings.append(Finding(rule.severity, node.get_friendly_name(), kind, message, rule.source))
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


def refused_ops(model: Model, target: str = "MYRIAD") -> str:
    """The ops of ``model`` that ``target`` refuses (the errors of :func:`check_model`) in one line,
    ``"OpType name: why; ..."``; "" when there are none. What the runtime refuses a model for when it
    opens it on a MYRIAD (or its twin), and ``runtime compile --target MYRIAD`` before it compiles."""
    return "; ".join(f"{f.op_type} {f.op_name}: {f.message}" for f in check_model(model, target)
                     if f.severity == "error")


def check_bundle_dir(path: str | Path, target: str = "MYRIAD") -> list[Finding]:
    """:func:`check_model` on the ``model.xml`` / ``model.bin`` of a bundle directory (its manifest
    is not needed: the IR of a bundle still being made can be checked).

    Raises:
        BundleError: if ``path`` is not a directory or either IR file is missing, worded as
            :func:`runtime.bundle.read_bundle` words it, so ``runtime check`` reports a wrong
            ``--model`` as ``infer`` and ``serve`` do (``error: ...``, not a traceback).
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle directory")
    missing = [n for n in IR_FILES if not (path / n).is_file()]
    if missing:
        raise BundleError(f"{path}: missing {', '.join(missing)}")
    xml, bin_ = (path / n for n in IR_FILES)
    try:
        model = read_ir(xml.read_bytes(), bin_.read_bytes())
    except ValueError as exc:  # OpenVINO cannot read it: the same one line as infer and serve give
        raise BundleError(f"{path}: {exc}") from None
    return check_model(model, target)
