"""The target twin's graph rewrite: make the CPU compute an IR the way a target profile says.

:func:`apply_profile` rewrites an ``ov.Model`` (read from an FP16 IR; the CPU plugin then compiles
it with ``INFERENCE_PRECISION_HINT=f32``) so that every tensor the target would store is stored in
the target's format, and ops the target runs differently run that way (``myriadx-emu``):

- model inputs: converted as the host converts them (``numerics.conversion_rounding``); for an
  integer input (u8/u16 counts), the Convert that makes them floating point is that conversion;
- floating weight constants: projected in numpy (:func:`runtime.profiles.convert`) and replaced;
- every other op producing a floating tensor: followed by a projection subgraph built from f32
  arithmetic, except ops that only move or select values (:data:`VALUE_PRESERVING`): their inputs
  are already projected, so their outputs are too (tests walk every intermediate to prove it);
- Interpolate (v4 and v11) whose (mode, coordinate mode) the target does not run natively: replaced
  by an Interpolate-4 with the profile's remap target.

Why arithmetic and not Convert: the CPU plugin removes an f32->f16->f32 Convert pair (it runs the
whole graph in f32), so the rounding has to be done in operations it must execute. The projection
of a tensor ``x`` to ``p`` significant bits (11 for fp16, 8 for bf16):

1. range guard: fp16 clamps ``x`` to ±2^17 (every |x| >= 65520 overflows either way; the clamp
   keeps the split below from overflowing f32); bf16 rounds |x| >= 2^64 as ``x * 2^-64`` (scaled
   back after), because ``x * 8193`` would overflow.
2. Veltkamp split: ``t = x * 2^(24-p) + x``; ``r = t - (t - x)`` is ``x`` rounded to nearest-even
   at ``p`` bits (checked exhaustively over [1, 2) against numpy's float16 cast). ``t`` is written
   ``Multiply(x, 2^(24-p))`` then ``Add(., x)`` rather than ``Multiply(x, 2^(24-p) + 1)``: the
   power-of-two product is exact, so a plugin that contracts Multiply+Add into an FMA gets the
   same ``t``; a contracted ``x * c - x`` would skip the rounding of ``t`` and return ``x``.
3. ties away from zero (f32tof16, the Myriad host conversion): ``d = x - r`` is exact; ``x`` was a
   tie iff ``d != 0`` and ``r + 2d`` (the other neighbour) is itself on the ``p``-bit grid; if
   ``r`` is the neighbour nearer zero, take ``r + 2d``.
4. subnormals: ``keep`` rounds ``|x| < min_normal`` to a multiple of the subnormal step with Round-5
   (``x * 2^k`` and back are exact); ``flush`` / ``myriad`` apply their thresholds to ``|r|``,
   ``daz`` its threshold to ``|x|``.
5. overflow: ``saturate`` clamps to ±max; ``inf`` sends ``|r| > max`` to ``r * inf``.
6. inf and NaN pass unchanged (a Select on ``|x| < inf``: the clamps map NaN to a bound).

What the CPU plugin was found to fold or fuse, and how each is avoided, is in :data:`FINDINGS`;
``tests/runtime/test_emulate.py`` checks the result op type by op type against the numpy reference
(:func:`runtime.profiles.project`), and the projection itself bit for bit.

Cost: each projected tensor gets about 20 elementwise ops (the input about 30: ties away), which
the plugin runs as fused elementwise kernels; the twin reports the target's latency from a cost
model, never from its own host time.

Length: one graph rewrite. Input conversion, constant and activation projection, FP16 accumulation
and the Interpolate remapping all share its bookkeeping (what is already projected) and its
report, so they stay in one module. The numerics themselves live in runtime/profiles.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import numpy as np

from runtime.profiles import InterpolateSemantics, Numerics, TargetProfile, convert, get_profile

from runtime.ov_api import CompiledModel, Core, Model, Output, opset, read_ir

ops1, ops5, ops10 = opset(1), opset(5), opset(10)

#: What a caller's ``compile_cpu`` makes of the twin (compile_twin returns it as it is).
Compiled = TypeVar("Compiled")

#: The emulation relies on f32 arithmetic for its rounding steps, so this is not a tunable default:
#: bf16 or f16 inference precision would round the rounding.
EMULATION_CPU_CONFIG: dict[str, str] = {"INFERENCE_PRECISION_HINT": "f32"}

#: Denormals kept, not read or written as zero, on every host: the rewrite does not depend on it
#: (tests run it with DAZ/FTZ on as well), but one setting everywhere leaves one less host
#: difference in the op results the projection receives.
DENORMALS_CONFIG: dict[str, str] = {"CPU_DENORMALS_OPTIMIZATION": "NO"}


def supports_denormals_property(core: Core) -> bool:
    """True when this OpenVINO's CPU plugin takes ``CPU_DENORMALS_OPTIMIZATION``."""
    return "CPU_DENORMALS_OPTIMIZATION" in core.get_property("CPU", "SUPPORTED_PROPERTIES")


def emulation_cpu_config(core: Core) -> dict[str, str]:
    """The CPU plugin properties the twin compiles with on this toolkit."""
    return {**EMULATION_CPU_CONFIG, **(DENORMALS_CONFIG if supports_denormals_property(core) else {})}

#: Ops whose outputs are values of their inputs (moved, selected, or max(x, 0)): with every input
#: projected their outputs are representable, so projecting again would only cost time.
#: Clamp is not here: its bounds are attributes that need not be representable.
VALUE_PRESERVING = frozenset({
    "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "VariadicSplit", "Gather",
    "StridedSlice", "Slice", "Broadcast", "Tile", "MaxPool", "Relu", "DepthToSpace", "SpaceToDepth",
    "ReduceMax", "ReduceMin", "ShuffleChannels", "Pad",
})

#: Input ports that carry values (data or weights) rather than shapes, axes, scales or bounds, for
#: the ops that have floating inputs of the second kind. Every port of any other op is a value port:
#: on the target every tensor an op reads is stored in the format (BatchNormInference's gamma and
#: beta, Swish's beta, FakeQuantize's ranges, ...), and the ports that are parameters rather than
#: tensors are almost all integer (Reshape shapes, axes, indices), which are never projected. A
#: floating parameter port must be listed here, or its constants are rounded as values would be.
VALUE_PORTS: dict[str, tuple[int, ...]] = {
    "ConvolutionBackpropData": (0, 1), "GroupConvolutionBackpropData": (0, 1),  # 2: output shape
    "Select": (1, 2), "Pad": (0, 3), "ShapeOf": (),
    # scales (v4 port 2, v11 port 1) are resize ratios the plugin reads at compile time
    "Interpolate": (0,),
    # start, stop and step: arguments of a generator, not tensors the target stores
    "Range": (),
    # the IoU and score thresholds and soft-NMS sigma are parameters of the op (ports 2 to 5)
    "NonMaxSuppression": (0, 1),
}

#: Limits of the emulation itself, whatever the profile (target-specific ones are profile caveats).
NOT_MODELLED = (
    "sums inside Convolution/MatMul accumulate in f32 on the CPU unless the profile says accumulate = "
    "fp16 (then per chunk of input channels, the partial sums added in the format); GroupConvolution, "
    "AvgPool, Interpolate and the reductions (ReduceMean, ReduceSum, MVN, Softmax, NormalizeL2) always "
    "sum in f32, and only each op's stored result is rounded",
    "Sigmoid/Exp/Tanh and other transcendental ops are computed in f32 and then rounded; the "
    "target's own approximations (and their errors) are not reproduced",
    "ops fused by the target's compiler (e.g. Conv+ReLU) still round between the fused ops here, "
    "where the target may keep the intermediate unrounded",
)

#: What the CPU plugin was seen to fold or fuse (2026.4 and 2022.3.2, AVX2 host; each probed with
#: a graph compiled in f32 and compared with numpy), and what the rewrite does about it.
FINDINGS = (
    "Convert f32->f16->f32 is removed: the output equals the input. Not used.",
    "(x + M) - M with a constant M (magic-number rounding) is folded to x (LinOpSequenceFusion "
    "merges constant Add/Subtract chains). Not used: the Veltkamp split's subtractions have no "
    "constant operand and survive, directly after a Convolution as well.",
    "Multiply(Multiply(x, 2^100), 2^33) is merged into one Multiply by 2^133 = inf, so 0 becomes "
    "NaN. Two scalings in a row are separated by a Clamp (_scale).",
    "Clamp maps NaN to its lower bound (and Relu maps NaN to 0): inf and NaN are restored at the "
    "end of each projection with a Select on IsFinite.",
    "x * 0.0 is +0 whatever the sign of x in 2022.3: signed zeros come from underflowing x instead; "
    "2022.3 still loses -0 in places (values are exact, the sign of a zero is not guaranteed).",
    "IsFinite-10 is wrong for f32 denormals on AVX-512 hosts: its JIT kernel (jit_is_finite_emitter, "
    "avx512_core) classifies with vfpclassps mask 0b10111001, which includes the denormal class, so "
    "IsFinite(1e-40) is false (seen on an AMD EPYC with AVX-512 as a single op, and in the projection "
    "with ONEDNN_MAX_CPU_ISA=AVX512_CORE; the failure reported on an Intel Xeon with AMX, 2026.4.1, is "
    "this one by its figures, not re-run there); the AVX2 kernel is right. The finiteness test "
    "is |x| < inf instead, which no kernel gets wrong and which DAZ (denormals read as 0) keeps true.",
    "Multiply + Add contraction into an FMA was not observed; the split is written so that it could "
    "not change the result (its product is by a power of two, hence exact).",
)


@dataclass
class EmulationReport:
    """What :func:`apply_profile` did to a model, and what it does not model."""

    profile: str
    inputs_converted: list[str] = field(default_factory=list)
    projected_ops: dict[str, int] = field(default_factory=dict)   # op type -> outputs projected
    skipped_ops: dict[str, int] = field(default_factory=dict)     # value-preserving, left alone
    constants_projected: int = 0
    constant_values_changed: int = 0
    accumulations_split: int = 0
    interpolates_remapped: list[dict[str, str]] = field(default_factory=list)  # name, from, to
    not_modelled: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, for manifests and run reports."""
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
                for k, v in self.__dict__.items()}


def _const(value: float | list[float] | np.ndarray, dtype: type = np.float32) -> Output:
    return ops1.constant(np.asarray(value, dtype=dtype)).output(0)


class _Builder:
    """Creates the nodes of one projection subgraph, all named ``<tensor>/emu/<n>``."""

    def __init__(self, base: str):
        self.base = base
        self.count = 0

    def __call__(self, node: Any) -> Output:
        self.count += 1
        node.set_friendly_name(f"{self.base}/emu/{self.count}")
        return node.output(0)


def _split(b: _Builder, v: Output, bits: int, rounding: str) -> Output:
    """``v`` rounded to ``bits`` significant bits (steps 2 and 3 of the module docstring)."""
    t = b(ops1.add(b(ops1.multiply(v, _const(2.0 ** (24 - bits)))), v))
    r = b(ops1.subtract(t, b(ops1.subtract(t, v))))
    if rounding == "nearest_even":
        return r
    d = b(ops1.subtract(v, r))
    other = b(ops1.add(r, b(ops1.add(d, d))))
    other_on_grid = b(ops1.equal(_split(b, other, bits, "nearest_even"), other))
    tie = b(ops1.logical_and(b(ops1.not_equal(d, _const(0.0))), other_on_grid))
    r_nearer_zero = b(ops1.greater(b(ops1.abs(v)), b(ops1.abs(r))))
    return b(ops1.select(b(ops1.logical_and(tie, r_nearer_zero)), other, r))


def _scale(b: _Builder, v: Output, log2: int) -> Output:
    """``v * 2^log2`` in steps that stay inside the f32 range (exact for normal results).

    A Clamp sits between two steps: the plugin merges Multiply-by-constant chains into one
    Multiply, whose constant (2^133 for bf16 subnormals) would be inf, and 0 * inf is NaN. The
    clamp bound is far above any value the caller keeps.
    """
    while log2:
        step = max(-100, min(100, log2))
        v = b(ops1.multiply(v, _const(2.0**step)))
        log2 -= step
        if log2:
            v = b(ops1.clamp(v, -(2.0**64), 2.0**64))
    return v


def project_output(x: Output, numerics: Numerics, rounding: str, name: str) -> Output:
    """Append to ``x`` the subgraph that projects it onto ``numerics``' format; return its output."""
    spec = numerics.spec
    b = _Builder(name)
    ax = b(ops1.abs(x))
    if numerics.format == "fp16":
        r = _split(b, b(ops1.clamp(x, -(2.0**17), 2.0**17)), spec.bits, rounding)
    else:  # bf16: x * 8193 overflows f32 above ~5e33, so large values are rounded scaled down
        big = b(ops1.greater_equal(ax, _const(2.0**64)))
        r_big = _scale(b, _split(b, _scale(b, x, -64), spec.bits, rounding), 64)
        r = b(ops1.select(big, r_big, _split(b, x, spec.bits, rounding)))
    ar = b(ops1.abs(r))
    if numerics.subnormals != "keep":
        # A zero with the sign of x, as f32tof16 returns, by underflowing x (|x| < 2^-14 wherever
        # it is used): OpenVINO 2022.3 turns x * 0 into +0. The sign of zero is still not
        # guaranteed there (its CPU plugin loses -0 in places); the value always is.
        zero = _scale(b, x, -200)
    if numerics.subnormals == "keep":
        k = round(-np.log2(spec.step))
        mode = "half_to_even" if rounding == "nearest_even" else "half_away_from_zero"
        sub = _scale(b, b(ops5.round(_scale(b, x, k), mode)), -k)
        r = b(ops1.select(b(ops1.less(ax, _const(spec.min_normal))), sub, r))
    elif numerics.subnormals == "flush":
        r = b(ops1.select(b(ops1.less(ar, _const(spec.min_normal))), zero, r))
    elif numerics.subnormals == "daz":
        # On |x|, not |r|: a host running with DAZ reads a denormal x as 0, which is still < min.
        r = b(ops1.select(b(ops1.less(ax, _const(spec.min_normal))), zero, r))
    else:  # myriad: [2^-15, 2^-14) -> ±2^-14, below -> ±0 (on the rounded magnitude)
        tiny = b(ops1.multiply(b(ops1.sign(x)), _const(spec.min_normal)))
        r = b(ops1.select(b(ops1.less(ar, _const(spec.min_normal))), tiny, r))
        r = b(ops1.select(b(ops1.less(ar, _const(spec.min_normal / 2))), zero, r))
    if numerics.overflow == "saturate":
        r = b(ops1.clamp(r, -spec.max_finite, spec.max_finite))
    else:
        overflowed = b(ops1.greater(b(ops1.abs(r)), _const(spec.max_finite)))
        r = b(ops1.select(overflowed, b(ops1.multiply(r, _const(np.inf))), r))
    # inf and NaN pass (the clamps would not let them). Not IsFinite: its AVX-512 kernel counts
    # f32 denormals as non-finite (see FINDINGS); |x| < inf is false exactly for inf and NaN.
    finite = b(ops1.less(ax, _const(np.inf)))
    out = ops1.select(finite, r, x)
    out.set_friendly_name(f"{name}/emu/projected")
    return out.output(0)


def _is_real(output: Output) -> bool:
    return bool(output.get_element_type().is_real())


def _value_targets(output: Output) -> list[Any]:
    """The consumers of ``output`` that read it as a value (see :data:`VALUE_PORTS`)."""
    targets = []
    for target in output.get_target_inputs():
        op = target.get_node().get_type_name()
        ports = VALUE_PORTS.get(op)
        if ports is None or target.get_index() in ports:
            targets.append(target)
    return targets


def _redirect(old: Output, new: Output, targets: list[Any]) -> None:
    """Point ``targets`` at ``new``; the tensor names move along so model outputs keep theirs.

    A Parameter keeps its names: they are the model input's names (``image``), which a caller looks
    the input up by; the projection after it is an internal tensor. (A Parameter that is itself a
    model output would have its output's name on the input tensor, as it had before.)
    """
    for target in targets:
        target.replace_source_output(new)
    names = set(old.get_names())
    if names and old.get_node().get_type_name() != "Parameter":
        old.get_tensor().set_names(set())
        new.get_tensor().set_names(names)


def _constant_values(node: Any) -> np.ndarray:
    data = np.asarray(node.get_data())
    if data.dtype == np.uint16 and node.get_output_element_type(0).get_type_name() == "f16":
        data = data.view(np.float16)  # 2022.3 hands f16 constants over as uint16
    return data.astype(np.float32)


def _project_constants(model: Model, numerics: Numerics, report: EmulationReport) -> None:
    """Replace every floating weight (Constant, or Constant -> Convert) by its projected f32 value.

    An integer Constant converted to floating point is a weight too: the plugin folds it into an f32
    constant that the host converts like any other (``_project_activations`` skips such Converts).
    """
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Constant":
            continue
        sources = [node.output(0)] if _is_real(node.output(0)) else []
        # An FP16 IR stores weights as f16 Constants decompressed by a Convert to f32.
        for target in node.output(0).get_target_inputs():
            consumer = target.get_node()
            if consumer.get_type_name() == "Convert" and _is_real(consumer.output(0)):
                sources.append(consumer.output(0))
        if not sources:
            continue
        values = _constant_values(node)
        projected = convert(values, numerics)
        replacement = None
        for source in sources:
            targets = [t for t in _value_targets(source) if t.get_node().get_type_name() != "Convert"]
            if not targets:
                continue
            if replacement is None:
                replacement = ops1.constant(projected)
                replacement.set_friendly_name(f"{node.get_friendly_name()}/emu/projected")
                report.constants_projected += 1
                report.constant_values_changed += int(np.sum(projected.view(np.uint32) != values.view(np.uint32)))
            for target in targets:
                target.replace_source_output(replacement.output(0))


def _interpolate_version(node: Any) -> int:
    version = str(node.get_type_info().version_id)
    if version.endswith("11"):
        return 11
    if version.endswith("4"):
        return 4
    return 1


def _static_dims(output: Output, axes: list[int]) -> list[int] | None:
    shape = output.get_partial_shape()
    if shape.is_dynamic:
        return None
    dims = [int(d) for d in output.get_shape()]
    return [dims[a] for a in axes]


def _remap_interpolates(model: Model, semantics: InterpolateSemantics, report: EmulationReport) -> None:
    """Replace each Interpolate the target does not run natively by the Interpolate-4 it runs."""
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Interpolate":
            continue
        version = _interpolate_version(node)
        attrs = node.get_attributes()
        if version == 1:
            raise ValueError(f"Interpolate-1 {node.get_friendly_name()!r} is not emulated; "
                             "valid: Interpolate-4 or Interpolate-11 (any current exporter)")
        mode, coord = attrs["mode"], attrs["coordinate_transformation_mode"]
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
        target = semantics.target(mode, coord, nearest)
        if target is None:
            continue
        data = node.input_value(0)
        rank = data.get_partial_shape().rank.get_length()
        if version == 4:
            sizes, scales = node.input_value(1), node.input_value(2)
            axes = node.input_value(3) if node.get_input_size() > 3 else None
        else:
            axes = node.input_value(2) if node.get_input_size() > 2 else None
            axes_list = (list(np.asarray(axes.get_node().get_data()).astype(int)) if axes is not None
                         else list(range(rank)))
            out_dims = _static_dims(node.output(0), axes_list)
            in_dims = _static_dims(data, axes_list)
            # Interpolate-4 wants both inputs; the one the shape mode ignores is filled from the
            # static shapes when known, so that the rewritten op reads correctly either way.
            if attrs["shape_calculation_mode"] == "scales":
                scales = node.input_value(1)
                sizes = _const(out_dims if out_dims else [1] * len(axes_list), np.int64)
            else:
                sizes = node.input_value(1)
                ratio = ([o / i for o, i in zip(out_dims, in_dims)] if out_dims and in_dims
                         else [1.0] * len(axes_list))
                scales = _const(ratio)
        replacement = ops10.interpolate(
            data, sizes, scales, mode, attrs["shape_calculation_mode"],
            pads_begin=list(attrs.get("pads_begin", [])), pads_end=list(attrs.get("pads_end", [])),
            coordinate_transformation_mode=target[0], nearest_mode=target[1],
            antialias=bool(attrs.get("antialias", False)), cube_coeff=float(attrs.get("cube_coeff", -0.75)),
            axes=axes,
        )
        name = node.get_friendly_name()
        replacement.set_friendly_name(name)
        old = node.output(0)
        _redirect(old, replacement.output(0), list(old.get_target_inputs()))
        report.interpolates_remapped.append({
            "name": name, "mode": mode,
            "from": f"{coord}/{nearest}" if mode == "nearest" else coord,
            "to": f"{target[0]}/{target[1]}" if mode == "nearest" else target[0],
        })


def _split_accumulations(model: Model, chunk: int, report: EmulationReport) -> None:
    """Convolution and MatMul sum over input channels (MatMul: over K) in chunks of ``chunk``: each
    chunk's sum is its own op (exact in f32, then rounded as every op result is), and the partial
    sums are added one at a time by Add ops (each rounded): accumulation in the format, in input-
    channel order. GroupConvolution (depthwise) is left as it is: each output sums one channel's
    taps. A hypothesis (no source states the Myriad X accumulator), named in the profile."""
    split = 0
    for node in list(model.get_ordered_ops()):
        op = node.get_type_name()
        if op == "Convolution":
            data_axis, weight_axis = 1, 1
        elif op == "MatMul":
            attrs = node.get_attributes()
            transpose_a, transpose_b = bool(attrs.get("transpose_a")), bool(attrs.get("transpose_b"))
            # K, the summed axis: the last of A and the one before the last of B, each swapped when
            # the op transposes it (torch Linear and ONNX Gemm(transB=1) import with transpose_b)
            data_axis = node.input_value(0).get_partial_shape().rank.get_length() - (2 if transpose_a else 1)
            weight_axis = node.input_value(1).get_partial_shape().rank.get_length() - (1 if transpose_b else 2)
        else:
            continue
        dim = node.input_value(0).get_partial_shape()[data_axis]
        if dim.is_dynamic or dim.get_length() <= chunk:
            continue
        n = dim.get_length()
        lengths = [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])
        sizes = _const(lengths, np.int64)
        xs = ops1.variadic_split(node.input_value(0), _const(data_axis, np.int64), sizes)
        ws = ops1.variadic_split(node.input_value(1), _const(weight_axis, np.int64), sizes)
        acc = None
        for i in range(len(lengths)):
            if op == "Convolution":
                a = node.get_attributes()
                part = ops1.convolution(xs.output(i), ws.output(i), a["strides"], a["pads_begin"], a["pads_end"],
                                        a["dilations"], a["auto_pad"])
            else:
                part = ops1.matmul(xs.output(i), ws.output(i), transpose_a, transpose_b)
            acc = part.output(0) if acc is None else ops1.add(acc, part).output(0)
        _redirect(node.output(0), acc, list(node.output(0).get_target_inputs()))  # type: ignore[arg-type]
        split += 1
    report.accumulations_split = split


def _converts_input(node: Any) -> bool:
    """A Convert of an integer model input to floating point: the device's conversion of the
    counts a u8/u16-input model receives (search.input_types), rounded as the profile says the
    input conversion rounds. u8 counts are exact in FP16; u16 counts above 2048 are not."""
    if node.get_type_name() != "Convert":
        return False
    source = node.input_value(0)
    return source.get_node().get_type_name() == "Parameter" and not _is_real(source)


def _project_activations(model: Model, numerics: Numerics, report: EmulationReport) -> None:
    projected: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for node in list(model.get_ordered_ops()):
        op = node.get_type_name()
        if op in ("Constant", "Result"):
            continue
        if op == "Convert" and node.input_value(0).get_node().get_type_name() == "Constant":
            continue  # weight decompression: the constant is projected instead
        for output in node.outputs():
            if not _is_real(output):
                continue
            if op in VALUE_PRESERVING:
                skipped[op] += 1
                continue
            targets = _value_targets(output)
            if not targets:
                continue
            if op == "Parameter" or _converts_input(node):
                rounding = numerics.conversion_rounding
                if not numerics.convert_input:
                    continue
                report.inputs_converted.append(node.get_friendly_name())
            else:
                rounding = numerics.rounding
                projected[op] += 1
            name = node.get_friendly_name() + (f".{output.get_index()}" if node.get_output_size() > 1 else "")
            _redirect(output, project_output(output, numerics, rounding, name), targets)
    report.projected_ops = dict(sorted(projected.items()))
    report.skipped_ops = dict(sorted(skipped.items()))


def _check_f32(model: Model) -> None:
    """Refuse a graph that computes in a floating type other than f32.

    The projection is f32 arithmetic inserted after each op (module docstring), so it needs every
    tensor it reads to be f32; an op computing in f16 (a legacy IR's f16 region, Convert to f16)
    would fail inside OpenVINO's type inference, naming neither the op nor the reason. Constants
    are fine in any floating type: an FP16 IR's f16 weights are decompressed by a Convert to f32.
    """
    for node in model.get_ordered_ops():
        if node.get_type_name() == "Constant":
            continue
        for output in node.outputs():
            kind = output.get_element_type().get_type_name()
            if _is_real(output) and kind != "f32":
                raise ValueError(f"{node.get_type_name()} {node.get_friendly_name()!r} computes in {kind}: the twin "
                                 f"expects an f32 graph (f16 weights decompressed to f32, as the toolkit's FP16 "
                                 f"IRs store them); convert the model to f32 first")


def apply_profile(model: Model, profile: TargetProfile) -> tuple[Model, EmulationReport]:
    """A copy of ``model`` rewritten to compute the way ``profile`` says, and what was done.

    Raises:
        ValueError: for an Interpolate the target refuses (its plugin would not compile it), and
            for a graph with ops computing in a floating type other than f32.
    """
    numerics = profile.numerics
    if not numerics.is_identity:  # the fp32 profile adds no f32 arithmetic: any graph runs as it is
        _check_f32(model)
    model = model.clone()
    report = EmulationReport(profile=profile.name,
                             not_modelled=list(NOT_MODELLED) + list(profile.caveats))
    if profile.ops.interpolate is not None:
        _remap_interpolates(model, profile.ops.interpolate, report)
    if not numerics.is_identity:
        _project_constants(model, numerics, report)
        if numerics.accumulate == "fp16":
            _split_accumulations(model, numerics.accumulate_chunk, report)
        _project_activations(model, numerics, report)
    model.validate_nodes_and_infer_types()
    return model, report


@overload
def compile_twin(model: Model | tuple[bytes, bytes], profile: str | TargetProfile, core: Core | None = None,
                 config: dict[str, Any] | None = None, compile_cpu: None = None,
                 ) -> tuple[CompiledModel, EmulationReport]: ...


@overload
def compile_twin(model: Model | tuple[bytes, bytes], profile: str | TargetProfile, core: Core | None,
                 config: dict[str, Any] | None, compile_cpu: Callable[[Model, dict[str, Any]], Compiled],
                 ) -> tuple[Compiled, EmulationReport]: ...


def compile_twin(model: Model | tuple[bytes, bytes], profile: str | TargetProfile, core: Core | None = None,
                 config: dict[str, Any] | None = None,
                 compile_cpu: Callable[[Model, dict[str, Any]], Any] | None = None,
                 ) -> tuple[Any, EmulationReport]:
    """The twin of a target: ``model`` rewritten for ``profile`` and compiled on the CPU in f32.

    The one place a twin is made: the runtime's ``myriadx-emu`` device, the probe, the ablation and
    the tests all come here, so they cannot disagree on what the twin is. ``model`` is an OpenVINO
    model or an IR as (xml, bin) bytes; ``profile`` a name in profiles.toml or a profile built in
    code; ``config`` more CPU properties (e.g. a performance hint), never the precision ones.
    ``compile_cpu`` compiles the rewritten model with its full configuration for the CPU (default
    ``core.compile_model``), and what it returns is returned: the runtime's passes it through
    OpenVINO's model cache (:mod:`runtime.model_cache`) and returns the compile with its outcome.
    The rewrite is deterministic, and the cache's key hashes the rewritten graph with the
    configuration, so an entry is found only for the same twin of the same model under the same
    profile.
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    core = core or Core()
    if isinstance(model, tuple):
        xml, bin_ = model
        model = read_ir(xml, bin_, core)
    model, report = apply_profile(model, profile)
    full = {**(config or {}), **emulation_cpu_config(core)}
    if compile_cpu is None:
        return core.compile_model(model, "CPU", full), report
    return compile_cpu(model, full), report
