"""Tests for runtime.emulate: myriadx-emu (an IR rewritten to a profile, compiled on the CPU in f32)
against numpy references of each op followed by the profile's projection."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.emulate import apply_profile, compile_twin, emulation_cpu_config
from runtime.profiles import convert, get_profile, project, representable

try:
    from openvino import Core, Model, Tensor, serialize
    from openvino import opset1 as ops1
    from openvino import opset8 as ops8
    from openvino import opset10 as ops10
except ImportError:  # OpenVINO 2022.3
    from openvino.runtime import Core, Model, Tensor, serialize  # type: ignore[no-redef]
    from openvino.runtime import opset1 as ops1  # type: ignore[no-redef]
    from openvino.runtime import opset8 as ops8  # type: ignore[no-redef]
    from openvino.runtime import opset10 as ops10  # type: ignore[no-redef]

PROFILE = get_profile("fp16-myriadx")
NUMERICS = PROFILE.numerics
CORE = Core()
SHAPE = (1, 4, 16, 16)


# ---------------------------------------------------------------- helpers

def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in fp16 steps between two arrays of fp16 values (ordered integer encoding)."""
    def ordinal(x: np.ndarray) -> np.ndarray:
        bits = np.asarray(x, np.float32).astype(np.float16).view(np.uint16).astype(np.int32)
        return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)
    return np.abs(ordinal(a) - ordinal(b))


def assert_within_one_ulp(got: np.ndarray, want: np.ndarray, share: float = 0.999) -> None:
    assert got.shape == want.shape
    assert representable(got, NUMERICS).all(), "the emulated output holds values fp16-myriadx cannot"
    close = ulp_distance(got, want) <= 1
    assert close.mean() >= share, f"{(~close).sum()} of {close.size} values more than 1 fp16 ulp away"


def weight(values: np.ndarray) -> Any:
    """A weight as an FP16 IR stores it: an f16 Constant decompressed to f32 by a Convert."""
    return ops1.convert(ops1.constant(np.asarray(values, np.float16)), "f32")


def fp16_weights(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 0.5) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float16).astype(np.float32)


def model_of(build: Callable[..., Any], *shapes: tuple[int, ...]) -> Model:
    params = [ops8.parameter(list(s), np.float32, name=f"in{i}") for i, s in enumerate(shapes)]
    outputs = build(*params)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return Model(outputs, params, "test")


def run(model: Model, *inputs: np.ndarray, profile: str | None = "fp16-myriadx",
        config: dict[str, str] | None = None) -> list[np.ndarray]:
    """The twin of ``profile`` (None: the model as written, on the CPU in f32), and infer."""
    if profile is not None:
        compiled, _ = compile_twin(model, profile, CORE, config)
    else:
        compiled = CORE.compile_model(model, "CPU", {**emulation_cpu_config(CORE), **(config or {})})
    result = compiled.create_infer_request().infer({i: x for i, x in enumerate(inputs)})
    return [np.array(result[out]) for out in compiled.outputs]


def windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """(N, C, OH, OW, k, k) sliding windows of an NCHW array."""
    w = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    return w[:, :, ::stride, ::stride]


def conv_ref(x: np.ndarray, w: np.ndarray, pad: int, groups: int = 1) -> np.ndarray:
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = windows(xp, w.shape[-1], 1)
    if groups == 1:
        return np.einsum("nchwij,ocij->nohw", win, w.astype(np.float64))
    return np.einsum("nchwij,cij->nchw", win, w[:, 0].astype(np.float64))


def resize_ref(x: np.ndarray, scale: int, coordinate_mode: str) -> np.ndarray:
    """Separable linear upsampling (linear_onnx) of an NCHW array by an integer ``scale``."""
    def axis(length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = np.arange(length * scale, dtype=np.float64)
        if coordinate_mode == "half_pixel":
            src = (out + 0.5) / scale - 0.5
        elif coordinate_mode == "asymmetric":
            src = out / scale
        else:  # align_corners
            src = out * (length - 1) / (length * scale - 1)
        src = np.clip(src, 0, length - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, length - 1), src - lo

    y = x.astype(np.float64)
    lo, hi, f = axis(x.shape[2])
    y = y[:, :, lo] * (1 - f)[:, None] + y[:, :, hi] * f[:, None]
    lo, hi, f = axis(x.shape[3])
    return y[..., lo] * (1 - f) + y[..., hi] * f


def interpolate(x: Any, mode: str, coordinate_mode: str, nearest_mode: str = "round_prefer_floor",
                size: tuple[int, int] = SHAPE[2:]) -> Any:
    """Interpolate-4 upsampling by 2 (``size``: the input's height and width)."""
    return ops10.interpolate(x, ops1.constant(np.array([2 * size[0], 2 * size[1]], np.int64)),
                             ops1.constant(np.array([2.0, 2.0], np.float32)), mode, "scales",
                             coordinate_transformation_mode=coordinate_mode, nearest_mode=nearest_mode,
                             axes=ops1.constant(np.array([2, 3], np.int64)))


# ---------------------------------------------------------------- op by op, random data

RNG = np.random.default_rng(7)
W3 = fp16_weights(RNG, (6, 4, 3, 3))
WDW = fp16_weights(RNG, (4, 1, 1, 3, 3))
B = fp16_weights(RNG, (1, 4, 1, 1))


def _conv(x: Any) -> Any:
    return ops1.convolution(x, weight(W3), [1, 1], [1, 1], [1, 1], [1, 1])


def _maxpool(x: Any) -> Any:
    return ops1.max_pool(x, [2, 2], [0, 0], [0, 0], [3, 3], "floor")


def _avgpool(x: Any) -> Any:
    return ops1.avg_pool(x, [2, 2], [0, 0], [0, 0], [3, 3], True, "floor")


OPS: dict[str, tuple[Callable[..., Any], Callable[..., np.ndarray], int]] = {
    # name: (graph builder, float64 reference on the converted inputs, number of inputs)
    "convolution": (_conv, lambda x: conv_ref(x, W3, 1), 1),
    "group_convolution": (lambda x: ops1.group_convolution(x, weight(WDW), [1, 1], [1, 1], [1, 1], [1, 1]),
                          lambda x: conv_ref(x, WDW[:, 0], 1, groups=4), 1),
    "add": (lambda x, y: ops1.add(x, y), lambda x, y: x.astype(np.float64) + y, 2),
    "add_bias": (lambda x: ops1.add(x, weight(B)), lambda x: x.astype(np.float64) + B, 1),
    "multiply": (lambda x, y: ops1.multiply(x, y), lambda x, y: x.astype(np.float64) * y, 2),
    "relu": (lambda x: ops1.relu(x), lambda x: np.maximum(x, 0), 1),
    "relu6": (lambda x: ops1.clamp(x, 0.0, 6.0), lambda x: np.clip(x, 0, 6), 1),
    "sigmoid": (lambda x: ops1.sigmoid(x), lambda x: 1 / (1 + np.exp(-x.astype(np.float64))), 1),
    "interpolate_nearest": (lambda x: interpolate(x, "nearest", "asymmetric", "floor"),
                            lambda x: x.repeat(2, axis=2).repeat(2, axis=3), 1),
    "interpolate_linear": (lambda x: interpolate(x, "linear_onnx", "asymmetric"),
                           lambda x: resize_ref(x, 2, "asymmetric"), 1),
    "concat": (lambda x, y: ops1.concat([x, y], 1), lambda x, y: np.concatenate([x, y], 1), 2),
    "max_pool": (_maxpool, lambda x: windows(x, 3, 2).max(axis=(-1, -2)), 1),
    "avg_pool": (_avgpool, lambda x: windows(x.astype(np.float64), 3, 2).mean(axis=(-1, -2)), 1),
}


@pytest.mark.parametrize("op", list(OPS))
def test_op_matches_numpy_reference_under_myriadx_emu(op: str) -> None:
    build, reference, n_inputs = OPS[op]
    rng = np.random.default_rng(list(OPS).index(op))
    inputs = [(rng.standard_normal(SHAPE) * 3).astype(np.float32) for _ in range(n_inputs)]
    (got,) = run(model_of(build, *[SHAPE] * n_inputs), *inputs)
    # The device converts the f32 tile on input, computes, and stores the result in fp16.
    want = project(np.asarray(reference(*[convert(x, NUMERICS) for x in inputs]), np.float32), NUMERICS)
    assert_within_one_ulp(got, want)


def test_emulation_is_not_the_plain_f32_result() -> None:
    """The check above could pass by accident if the projection did nothing: make sure it does."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(SHAPE) * 3).astype(np.float32)
    (plain,) = run(model_of(_conv, SHAPE), x, profile=None)
    (emulated,) = run(model_of(_conv, SHAPE), x)
    assert not representable(plain, NUMERICS).all()
    assert np.mean(plain != emulated) > 0.9


# ---------------------------------------------------------------- the projection itself, bit for bit

def _wide_format_values(profile: str, n: int, seed: int) -> np.ndarray:
    """Random values of the profile's format, spread so that their products overflow and underflow."""
    rng = np.random.default_rng(seed)
    span = 16 if profile.startswith("fp16") else 70  # bf16: products reach past 2^128 and under 2^-126
    x = rng.choice([-1, 1], n) * np.exp2(rng.uniform(-span, span, n)) * rng.uniform(1, 2, n)
    return project(x.astype(np.float32), get_profile(profile).numerics)


@pytest.mark.parametrize("profile", ["fp16-myriadx", "fp16-ieee", "bf16"])
def test_projection_subgraph_is_bit_exact(profile: str) -> None:
    """A product of two format values is exact in f32 (when normal), so the emulated Multiply must
    store exactly what the numpy reference stores: rounding, ties, overflow, subnormals, inf and NaN
    (bit for bit, except the sign of a zero, which OpenVINO 2022.3's CPU plugin does not always keep)."""
    assert projection_mismatches(profile)["product"] == 0


def _denormals_and_neighbours(seed: int) -> np.ndarray:
    """f32 denormals of every magnitude, zeros, and normals around every profile's thresholds."""
    rng = np.random.default_rng(seed)
    denormal = rng.choice([-1, 1], 2048) * np.exp2(rng.uniform(-149, -126, 2048))
    near = rng.choice([-1, 1], 2048) * np.exp2(rng.uniform(-127, -12, 2048)) * rng.uniform(1, 2, 2048)
    edges = [2.0**-126, -(2.0**-126), 2.0**-126 * (1 - 2.0**-23), 2.0**-149, -(2.0**-149), 0.0, -0.0,
             2.0**-14, 2.0**-15, 2.0**-15 - 2.0**-27, 2.0**-24, 2.0**-25]
    return np.concatenate([denormal, near, edges, np.zeros(4096 - 4096 % 2048 - len(edges))]).astype(np.float32)


def _bits_differ(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Where two arrays differ bit for bit (any zero equals any zero: see the test below)."""
    same = (got.view(np.uint32) == want.view(np.uint32)) | (got == 0) & (want == 0) | np.isnan(got) & np.isnan(want)
    return ~same


def projection_mismatches(profile: str, config: dict[str, str] | None = None) -> dict[str, int]:
    """How many values the twin stores differently from the numpy reference under ``profile``,
    for an op's result (a product of format values, and f32 denormals) and for the input conversion.

    ``config`` adds CPU plugin properties (the host-matrix test runs it with the host's denormal
    handling switched to flush-to-zero)."""
    numerics = get_profile(profile).numerics
    x, y = (_wide_format_values(profile, 1 << 14, seed).reshape(1, 16, 32, 32) for seed in (1, 2))
    x.flat[:4] = [np.inf, -np.inf, np.nan, 1.0]
    tiny = _denormals_and_neighbours(3)[: 1 << 12].reshape(1, 4, 32, 32)
    cases = {
        "product": (lambda a, b: ops1.multiply(a, b), (x, y), lambda: project(x * y, numerics)),
        "result_denormals": (lambda a: ops1.multiply(a, ops1.constant(np.float32(1.0))), (tiny,),
                             lambda: project(tiny, numerics)),
        "input_denormals": (lambda a: ops1.concat([a], 1), (tiny,), lambda: convert(tiny, numerics)),
    }
    out = {}
    for case, (build, inputs, reference) in cases.items():
        (got,) = run(model_of(build, *[i.shape for i in inputs]), *inputs, profile=profile, config=config)
        with np.errstate(over="ignore"):
            out[case] = int(_bits_differ(got, reference()).sum())
    return out


@pytest.mark.parametrize("profile", ["fp16-myriadx", "fp16-ieee", "bf16"])
def test_f32_denormals_are_projected_as_the_profile_says(profile: str) -> None:
    """An f32 denormal (an op result or an input) is stored as the profile says, not passed through.
    Before the twin stopped using IsFinite, every one of them passed through on AVX-512 hosts."""
    assert projection_mismatches(profile) == {"product": 0, "result_denormals": 0, "input_denormals": 0}


HOST_ISAS = ["AVX2", "AVX512_CORE", "ALL"]   # oneDNN's kernel families; ALL: the host's best (AMX, FP16)


@pytest.mark.parametrize("denormals", ["NO", "YES"])
@pytest.mark.parametrize("isa", HOST_ISAS)
def test_twin_is_bit_exact_whatever_kernels_and_denormal_mode_the_host_uses(isa: str, denormals: str) -> None:
    """The CPU plugin picks its kernels by the host's ISA (capped here with ONEDNN_MAX_CPU_ISA, which
    its JIT emitters obey) and may run with DAZ/FTZ (CPU_DENORMALS_OPTIMIZATION): the twin must
    store the same values under each. A subprocess each: DAZ/FTZ sticks to the threads that set it."""
    import json
    import os
    import subprocess
    import sys

    from runtime.emulate import supports_denormals_property

    if denormals == "YES" and not supports_denormals_property(CORE):
        pytest.skip("this OpenVINO has no CPU_DENORMALS_OPTIMIZATION")
    code = ("import json; from tests.runtime.test_emulate import projection_mismatches as m; "
            f"print(json.dumps({{p: m(p, {{'CPU_DENORMALS_OPTIMIZATION': '{denormals}'}}) "
            "for p in ('fp16-myriadx', 'fp16-ieee', 'bf16')}))")
    root = Path(__file__).resolve().parents[2]
    # The project first, then whatever path the parent was given (an OpenVINO outside site-packages).
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(count == 0 for cases in report.values() for count in cases.values()), report


def test_input_conversion_is_f32tof16_on_raw_counts() -> None:
    """Unscaled 16-bit sensor counts hit fp16 ties all the time; the host conversion rounds them
    away from zero and saturates past 65504."""
    counts = np.arange(0, 80_000, dtype=np.float32).reshape(1, 1, 400, 200)
    (got,) = run(model_of(lambda x: ops1.concat([x], 1), counts.shape), counts)
    np.testing.assert_array_equal(got, convert(counts, NUMERICS))
    assert got[0, 0, 10, 49] == 2050.0 and got.max() == 65504.0  # 2049: a tie, rounded away
    assert not np.array_equal(got, project(counts, NUMERICS))     # nearest-even differs there


# ---------------------------------------------------------------- where FP16 matters

def _range_model() -> Model:
    """x * 1000 (overflows fp16 for |x| > 65.5) and x * 2^-10 * 2^-10 (fp16 underflow)."""
    def build(x: Any) -> list[Any]:
        big = ops1.multiply(x, weight(np.array(1000.0)))
        small = ops1.multiply(ops1.multiply(x, weight(np.array(2.0**-10))), weight(np.array(2.0**-10)))
        return [big, small]
    return model_of(build, (1, 8))


RANGE_INPUT = np.array([[70.0, -100.0, 1.0, 40.0, -48.0, 70.5, 0.5, 3.0]], np.float32)


def test_fp16_range_under_myriadx_emu_saturates_and_flushes() -> None:
    big, small = run(_range_model(), RANGE_INPUT)
    assert big[0, :3].tolist() == [65504.0, -65504.0, 1000.0]
    # 1 * 2^-20 and 0.5 * 2^-20 are under 2^-15: flushed; 40 and 48 * 2^-20 lie in [2^-15, 2^-14).
    assert small[0, [2, 6, 7]].tolist() == [0.0, 0.0, 0.0]
    assert small[0, [3, 4]].tolist() == [2.0**-14, -(2.0**-14)]
    assert small[0, 5] == np.float16(70.5 * 2.0**-20)


def test_fp16_range_plain_cpu_is_f32() -> None:
    big, small = run(_range_model(), RANGE_INPUT, profile=None)
    np.testing.assert_array_equal(big, RANGE_INPUT * np.float32(1000))
    np.testing.assert_array_equal(small, RANGE_INPUT * np.float32(2.0**-20))


def test_fp16_range_under_ieee_overflows_to_inf_and_keeps_subnormals() -> None:
    big, small = run(_range_model(), RANGE_INPUT, profile="fp16-ieee")
    with np.errstate(over="ignore"):
        assert np.array_equal(big, (RANGE_INPUT * 1000).astype(np.float16).astype(np.float32))
    assert np.array_equal(small, (RANGE_INPUT * 2.0**-20).astype(np.float16).astype(np.float32))
    assert np.isinf(big[0, 0]) and 0 < small[0, 2] < 2.0**-14


# ---------------------------------------------------------------- op semantics: Interpolate remap

HALF_PIXEL_MODES = [("linear_onnx", 4), ("linear", 4)]
try:
    from openvino import opset11 as ops11
    HALF_PIXEL_MODES.append(("linear_onnx", 11))
except ImportError:  # OpenVINO 2022.3 has no opset11 (nor would the Myriad plugin read it)
    ops11 = None


def _upsample(mode: str, version: int) -> Model:
    def build(x: Any) -> Any:
        if version == 11:
            return ops11.interpolate(x, ops1.constant(np.array([2.0, 2.0], np.float32)), mode, "scales",
                                     coordinate_transformation_mode="half_pixel",
                                     axes=ops1.constant(np.array([2, 3], np.int64)))
        return interpolate(x, mode, "half_pixel")
    return model_of(build, SHAPE)


@pytest.mark.parametrize(("mode", "version"), HALF_PIXEL_MODES)
def test_half_pixel_upsampling_is_remapped_under_myriadx_emu(mode: str, version: int) -> None:
    x = (np.random.default_rng(5).standard_normal(SHAPE) * 3).astype(np.float32)
    model, report = apply_profile(_upsample(mode, version), PROFILE)
    assert [(r["mode"], r["from"], r["to"]) for r in report.interpolates_remapped] == \
        [(mode, "half_pixel", "asymmetric")]
    (emulated,) = run(model, x, profile=None)  # already rewritten
    asymmetric = project(resize_ref(convert(x, NUMERICS), 2, "asymmetric").astype(np.float32), NUMERICS)
    half_pixel = project(resize_ref(convert(x, NUMERICS), 2, "half_pixel").astype(np.float32), NUMERICS)
    assert_within_one_ulp(emulated, asymmetric)
    assert np.mean(ulp_distance(emulated, half_pixel) > 1) > 0.5  # the remap is visible

    (plain,) = run(_upsample(mode, version), x, profile=None)
    np.testing.assert_allclose(plain, resize_ref(x, 2, "half_pixel"), rtol=1e-5, atol=1e-5)


def test_native_interpolate_is_left_alone_and_unsupported_modes_are_refused() -> None:
    _, report = apply_profile(model_of(lambda x: interpolate(x, "linear_onnx", "align_corners"), SHAPE), PROFILE)
    assert report.interpolates_remapped == []
    with pytest.raises(ValueError, match="nearest"):
        apply_profile(model_of(lambda x: interpolate(x, "cubic", "half_pixel"), SHAPE), PROFILE)
    _, report = apply_profile(_upsample("linear_onnx", 4), get_profile("fp16-ieee"))
    assert report.interpolates_remapped == []


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_fp16_accumulation_runs_in_input_channel_order_as_the_numpy_reference(chunk: int) -> None:
    """accumulate = "fp16": each chunk of input channels summed exactly and rounded, the partial
    sums added one at a time and rounded after each addition: the same order in numpy."""
    numerics = dataclasses.replace(NUMERICS, accumulate="fp16", accumulate_chunk=chunk)
    profile = dataclasses.replace(PROFILE, numerics=numerics)
    rng = np.random.default_rng(chunk)
    x = (rng.standard_normal(SHAPE) * 30).astype(np.float32)  # large sums: the order shows
    compiled, report = compile_twin(model_of(_conv, SHAPE), profile, CORE)
    assert report.accumulations_split == 1
    got = np.array(compiled.create_infer_request().infer({0: x})[compiled.outputs[0]])
    xc = convert(x, numerics)
    acc = None
    for start in range(0, SHAPE[1], chunk):
        part = project(conv_ref(xc[:, start:start + chunk], W3[:, start:start + chunk], 1).astype(np.float32), numerics)
        acc = part if acc is None else project((acc.astype(np.float64) + part).astype(np.float32), numerics)
    assert_within_one_ulp(got, acc)
    exact = project(conv_ref(xc, W3, 1).astype(np.float32), numerics)
    if chunk < SHAPE[1]:
        assert (ulp_distance(got, exact) > 0).any(), "the accumulation order made no difference: not tested"


@pytest.mark.parametrize(("transpose_a", "transpose_b"), [(False, False), (False, True), (True, False), (True, True)])
def test_fp16_accumulation_splits_a_matmul_whatever_it_transposes(transpose_a: bool, transpose_b: bool) -> None:
    """K is summed in FP16 one term at a time: 2048 + 1 + 1 + 1 stays 2048 in FP16 (each +1 rounds
    back), 2051 rounds to 2052 in one exact f32 sum. A transposed MatMul (torch Linear, ONNX
    Gemm(transB=1)) was skipped and summed in f32, with nothing in the report."""
    profile = get_profile("myriadx-fp16-accumulate")
    a = np.ones((1, 4), np.float32)
    b = np.array([[2048.0], [1.0], [1.0], [1.0]], np.float32)   # K x N
    param = ops8.parameter([4, 1] if transpose_a else [1, 4], np.float32)
    matmul = ops1.matmul(param, ops1.constant(b.T.copy() if transpose_b else b), transpose_a, transpose_b)
    compiled, report = compile_twin(Model([matmul], [param], "matmul"), profile, CORE)
    got = np.array(compiled.create_infer_request().infer({0: a.T.copy() if transpose_a else a})[compiled.outputs[0]])
    assert report.accumulations_split == 1 and got.item() == 2048.0


# ---------------------------------------------------------------- every intermediate tensor

def _net(x: Any) -> Any:
    a = ops1.relu(_conv(x))
    b = ops1.convolution(a, weight(fp16_weights(np.random.default_rng(1), (6, 6, 3, 3))),
                         [1, 1], [1, 1], [1, 1], [1, 1])
    c = ops1.sigmoid(ops1.add(ops1.add(a, b), weight(fp16_weights(np.random.default_rng(2), (1, 6, 1, 1)))))
    d = ops1.concat([c, ops1.clamp(ops1.multiply(a, b), 0.0, 6.0)], 1)
    e = ops1.avg_pool(ops1.max_pool(d, [1, 1], [1, 1], [1, 1], [3, 3], "floor"),
                      [2, 2], [0, 0], [0, 0], [2, 2], True, "floor")
    up = interpolate(e, "linear_onnx", "half_pixel", size=(8, 8))
    return ops1.group_convolution(up, weight(fp16_weights(np.random.default_rng(3), (12, 1, 1, 3, 3))),
                                  [1, 1], [1, 1], [1, 1], [1, 1])


def _read_tensors(model: Model) -> list[Any]:
    """Every floating tensor a layer of the network reads (the inputs of every non-emulation op)."""
    tensors = {}
    for node in model.get_ordered_ops():
        if "/emu/" in node.get_friendly_name() or node.get_type_name() in ("Result", "Constant", "Convert"):
            continue
        for i in range(node.get_input_size()):
            source = node.input_value(i)
            if source.get_element_type().is_real() and source.get_node().get_type_name() not in ("Constant", "Convert"):
                tensors[(source.get_node().get_friendly_name(), source.get_index())] = source
    return list(tensors.values())


def _walk(model: Model, x: np.ndarray) -> list[np.ndarray]:
    tensors = _read_tensors(model)
    model.add_outputs(tensors)
    compiled = CORE.compile_model(model, "CPU", emulation_cpu_config(CORE))
    result = compiled.create_infer_request().infer({0: x})
    return [np.array(result[out]) for out in compiled.outputs]


def test_every_intermediate_tensor_is_representable_under_myriadx_emu() -> None:
    x = (np.random.default_rng(9).standard_normal(SHAPE) * 3).astype(np.float32)
    emulated, report = apply_profile(model_of(_net, SHAPE), PROFILE)
    values = _walk(emulated, x)
    assert len(values) >= 12
    for value in values:
        assert representable(value, NUMERICS).all()
    weights = [node for node in emulated.get_ordered_ops()
               if node.get_type_name() == "Constant" and node.get_friendly_name().endswith("/emu/projected")]
    assert len(weights) == report.constants_projected == 4
    for node in weights:
        assert representable(np.asarray(node.get_data(), np.float32), NUMERICS).all()
    assert report.projected_ops["Convolution"] == 2 and report.interpolates_remapped
    # The same walk over the plain model finds values fp16 cannot hold: the check has teeth.
    plain = _walk(model_of(_net, SHAPE), x)
    assert not all(representable(v, NUMERICS).all() for v in plain)


def test_compile_twin_from_ir_bytes() -> None:
    x = (np.random.default_rng(4).standard_normal(SHAPE) * 3).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        serialize(model_of(_conv, SHAPE), str(Path(tmp) / "m.xml"), str(Path(tmp) / "m.bin"))
        xml, bin_ = (Path(tmp) / "m.xml").read_bytes(), (Path(tmp) / "m.bin").read_bytes()
    compiled, report = compile_twin((xml, bin_), "fp16-myriadx")
    got = compiled.create_infer_request().infer({0: x})[compiled.output(0)]
    assert_within_one_ulp(np.array(got), project(conv_ref(convert(x, NUMERICS), W3, 1).astype(np.float32), NUMERICS))
    assert report.inputs_converted == ["in0"] and report.constants_projected == 1
    assert any("weight-scaling" in line for line in report.not_modelled)
    with pytest.raises(ValueError, match="fp16-ieee"):
        compile_twin((xml, bin_), "fp16")


DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"


@pytest.mark.skipif(not (DEFAULT_MODEL / "model.xml").exists(), reason="no default flight model")
def test_every_intermediate_of_the_default_flight_model_is_representable() -> None:
    """The issue's check on the real flight model: a real tile, every tensor a layer reads."""
    from flightsim.synthetic import generate_scene
    from runtime.bundle import read_bundle
    from runtime.preprocess import Preprocessor

    bundle = read_bundle(DEFAULT_MODEL)
    model = CORE.read_model(model=bundle.files["model.xml"].decode(),
                            weights=Tensor(np.frombuffer(bundle.files["model.bin"], np.uint8)))
    emulated, report = apply_profile(model, PROFILE)
    shape = tuple(bundle.manifest["input"]["shape"])
    scene = generate_scene(7, size=shape[2])
    x, _ = Preprocessor(bundle.manifest["input"], shape)(scene.image, {})
    values = _walk(emulated, x)
    assert len(values) >= 20 and report.projected_ops.get("Convolution", 0) >= 10
    for value in values:
        assert np.isfinite(value).all() and representable(value, NUMERICS).all()


@pytest.mark.skipif(not (DEFAULT_MODEL / "model.xml").exists(), reason="no default flight model")
def test_the_twin_keeps_the_model_input_and_output_names() -> None:
    """A caller looks the input up by its name (``image``): the projection after the Parameter is
    an internal tensor, so the name stays on the input; output names move to the projection."""
    xml, bin_ = (DEFAULT_MODEL / "model.xml").read_bytes(), (DEFAULT_MODEL / "model.bin").read_bytes()
    model = CORE.read_model(model=xml.decode(), weights=Tensor(np.frombuffer(bin_, np.uint8)))
    compiled, report = compile_twin((xml, bin_), "fp16-myriadx", CORE)
    assert report.inputs_converted
    assert [i.get_names() for i in compiled.inputs] == [i.get_names() for i in model.inputs]
    assert [o.get_names() for o in compiled.outputs] == [o.get_names() for o in model.outputs]
    name = next(iter(model.inputs[0].get_names()))
    assert compiled.input(name).get_names() == {name}


def test_every_floating_input_of_an_op_not_listed_is_stored_in_the_format() -> None:
    """BatchNormInference's gamma, beta, mean and variance are tensors the target stores in FP16,
    as every value input of an op not in VALUE_PORTS: projected, like a Convolution's weights.
    Interpolate's scales stay exact (a listed op: port 0 only)."""
    from runtime.ov_api import opset

    ops5 = opset(5)
    gamma, beta = np.array([1.0001, 0.3333333], np.float32), np.array([0.1, 0.7], np.float32)
    mean, var = np.array([0.0, 0.0], np.float32), np.array([1.0, 1.0], np.float32)
    model = model_of(lambda p: ops5.batch_norm_inference(p, gamma, beta, mean, var, 0.0), (1, 2, 2, 2))
    emulated, report = apply_profile(model, PROFILE)
    bn = next(n for n in emulated.get_ordered_ops() if n.get_type_name() == "BatchNormInference")
    stored = [np.asarray(bn.input_value(i).get_node().get_data()) for i in range(1, 5)]
    for got, want in zip(stored, (gamma, beta, mean, var)):
        assert np.array_equal(got, convert(want, NUMERICS))
    assert report.constants_projected == 4
    x = np.ones((1, 2, 2, 2), np.float32)
    (got,) = run(model, x)
    want = project(convert(x, NUMERICS) * convert(gamma, NUMERICS).reshape(1, 2, 1, 1)
                   + convert(beta, NUMERICS).reshape(1, 2, 1, 1), NUMERICS)
    assert np.array_equal(got, want)
    # scales of 1/3 are not fp16 values: projected, the output size would change
    up = model_of(lambda p: ops10.interpolate(p, ops1.constant(np.array([4, 4], np.int64)),
                                              ops1.constant(np.array([4 / 3, 4 / 3], np.float32)), "nearest", "scales",
                                              coordinate_transformation_mode="asymmetric", nearest_mode="floor",
                                              axes=ops1.constant(np.array([2, 3], np.int64))), (1, 1, 3, 3))
    emulated, _ = apply_profile(up, PROFILE)
    interp = next(n for n in emulated.get_ordered_ops() if n.get_type_name() == "Interpolate")
    assert np.array_equal(np.asarray(interp.input_value(2).get_node().get_data()), np.array([4 / 3, 4 / 3], np.float32))


def test_a_graph_computing_in_f16_is_refused_naming_the_op() -> None:
    """The projection is f32 arithmetic: an f16 region (a legacy IR layout) would fail inside
    OpenVINO's type inference; it is a ValueError naming the op and what the twin expects."""
    def f16_region(p: Any) -> Any:
        half = ops1.convert(p, "f16")
        half.set_friendly_name("to_half")
        product = ops1.multiply(half, ops1.constant(np.array([[0.1, 0.2, 0.3, 0.4]], np.float16)))
        return ops1.convert(product, "f32")

    model = model_of(f16_region, (1, 4))
    with pytest.raises(ValueError, match=r"Convert 'to_half' computes in f16: the twin expects an f32 graph"):
        apply_profile(model, PROFILE)
    # the identity profile adds no arithmetic: the graph runs as written
    x = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    (got,) = run(model, x, profile="fp32")
    assert np.allclose(got, x * np.array([0.1, 0.2, 0.3, 0.4], np.float16).astype(np.float32), rtol=1e-3)


def test_an_integer_constant_converted_to_float_is_stored_in_the_format() -> None:
    """Constant(i32) -> Convert(f32) is an f32 weight once the plugin folds it, converted on the host
    (f32tof16: 2049 and 3001 are ties, rounded away). It was skipped as weight decompression and
    never projected: 2049 reached a Concat's output, and 1 * 2049 rounded to even, 2048."""
    counts = np.array([[3001, 5000, 2049, 1]], np.int32)

    def build(x: Any) -> list[Any]:
        constant = ops1.convert(ops1.constant(counts), "f32")
        return [ops1.multiply(x, constant), ops1.concat([x, constant], 0)]

    product, joined = run(model_of(build, (1, 4)), np.ones((1, 4), np.float32))
    want = convert(counts.astype(np.float32), NUMERICS)
    assert want.tolist() == [[3002.0, 5000.0, 2050.0, 1.0]]
    np.testing.assert_array_equal(product, want)
    np.testing.assert_array_equal(joined[1:], want)


def test_the_report_names_the_reductions_that_sum_in_f32_under_fp16_accumulation() -> None:
    """Under myriadx-fp16-accumulate only Convolution and MatMul are split; a ReduceMean (the search's
    squeeze-excitation, the SAR land gate's mean over a whole tile) still sums in f32, and the report's
    list of what is not modelled named GroupConvolution, AvgPool and Interpolate only."""
    model = model_of(lambda x: ops1.reduce_mean(x, ops1.constant(np.array([2, 3], np.int64)), True), SHAPE)
    _, report = apply_profile(model, get_profile("myriadx-fp16-accumulate"))
    assert report.accumulations_split == 0
    assert any("ReduceMean" in line and "f32" in line for line in report.not_modelled)
