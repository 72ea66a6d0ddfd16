"""Tests for runtime.profiles: the numpy reference of each storage format, against independent ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from runtime.profiles import Numerics, convert, get_profile, profile_names, project, representable

MYRIAD = get_profile("fp16-myriadx").numerics
IEEE = get_profile("fp16-ieee").numerics
BF16 = get_profile("bf16").numerics


def wide_random(n: int, seed: int = 0) -> np.ndarray:
    """Random float32 over every magnitude an fp16 can touch and far past it, both signs, plus
    every fp16 subnormal, every midpoint between neighbouring fp16 values, and the specials."""
    rng = np.random.default_rng(seed)
    x = (rng.choice([-1, 1], n) * np.exp2(rng.uniform(-30, 20, n)) * rng.uniform(1, 2, n)).astype(np.float32)
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    midpoints = ((halves[:-1] + halves[1:]) / 2).astype(np.float32)  # exact: 12 bits fit in f32
    specials = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 65504, 65519, 65520, 1e38, -1e38], np.float32)
    return np.concatenate([x, halves.astype(np.float32), -midpoints, midpoints, specials])


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, except that any NaN equals any NaN."""
    same = a.view(np.uint32) == b.view(np.uint32)
    return bool(np.all(same | (np.isnan(a) & np.isnan(b))))


def f32tof16_reference(x: np.ndarray) -> np.ndarray:
    """The Myriad host conversion (OpenVINO 2022.3 precision_utils.cpp ``f32tof16``), re-expressed
    in numpy on the bit pattern: add half an fp16 ulp of |x|, flush or saturate, then truncate."""
    u = x.view(np.uint32)
    sign = np.where(u >> 31 == 1, -1.0, 1.0).astype(np.float32)
    mag = (u & 0x7FFFFFFF).view(np.float32)
    half_ulp = (u & 0x7F800000).view(np.float32) * np.float32(2.0**-11)
    with np.errstate(over="ignore"):
        v = (mag + half_ulp).astype(np.float32)
    truncated = (v.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)
    out = np.where(v < 2.0**-15, 0.0, np.where(v < 2.0**-14, 2.0**-14, np.where(v >= 65504, 65504, truncated)))
    out = (sign * out).astype(np.float32)
    return np.where(np.isfinite(x), out, x)


def bf16_reference(x: np.ndarray) -> np.ndarray:
    """VCVTNEPS2BF16 as the Intel SDM writes its operation: a zero or denormal input gives a zero of
    its sign; a normal one adds 0x7FFF plus the kept LSB as an integer and truncates to 16 bits."""
    u = x.view(np.uint32).astype(np.uint64)
    denormal_or_zero = (u & 0x7F800000) == 0
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    out = np.where(denormal_or_zero, (u & 0x80000000).astype(np.uint32), rounded).view(np.float32)
    return np.where(np.isfinite(x), out, x)


def test_profiles_are_listed_and_unknown_names_list_the_valid_ones() -> None:
    assert set(profile_names()) == {"fp16-myriadx", "myriadx-native-interp", "myriadx-fp16-accumulate", "fp16-ieee", "bf16", "fp32"}
    with pytest.raises(ValueError, match="fp16-myriadx"):
        get_profile("myriad")


def test_invalid_numerics_list_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="saturate"):
        dataclasses.replace(MYRIAD, overflow="wrap")
    with pytest.raises(ValueError, match="nearest_even"):
        Numerics(format="fp16", rounding="truncate")


def test_fp16_ieee_is_numpy_float16() -> None:
    x = wide_random(400_000)
    with np.errstate(over="ignore"):
        expected = x.astype(np.float16).astype(np.float32)
    assert bits_equal(project(x, IEEE), expected)
    assert bits_equal(convert(x, IEEE), expected)


def test_myriadx_differs_from_numpy_exactly_where_it_saturates_or_flushes() -> None:
    x = wide_random(400_000, seed=1)
    with np.errstate(over="ignore"):
        ieee = x.astype(np.float16).astype(np.float32)
    got = project(x, MYRIAD)
    overflow = np.isinf(ieee) & np.isfinite(x)
    subnormal = (np.abs(ieee) < 2.0**-14) & (ieee != 0)
    assert np.all(got[overflow] == np.copysign(65504, x[overflow]))
    # f32tof16 thresholds the value rounded to 11 bits (not to the subnormal grid): everything from
    # the midpoint below 2^-15 upwards becomes 2^-14, everything under it 0.
    up = np.abs(x[subnormal]) >= 2.0**-15 - 2.0**-27
    assert np.all(np.abs(got[subnormal]) == np.where(up, 2.0**-14, 0.0))
    elsewhere = ~(overflow | subnormal)
    assert bits_equal(got[elsewhere], ieee[elsewhere])
    assert overflow.sum() > 1000 and subnormal.sum() > 1000


@pytest.mark.parametrize(("value", "expected"), [
    (70000.0, 65504.0), (-1e30, -65504.0), (65519.0, 65504.0), (65520.0, 65504.0),
    (4e-5, 2.0**-14), (2.0**-15, 2.0**-14), (-5e-5, -(2.0**-14)), (2.0**-15 - 2.0**-27, 2.0**-14),
    (2.0**-15 - 2.0**-26, 0.0),
    (1e-5, 0.0), (1e-6, 0.0), (np.inf, np.inf), (-np.inf, -np.inf),
])
def test_myriadx_saturation_and_flush_values(value: float, expected: float) -> None:
    got = project(np.array([value], np.float32), MYRIAD)[0]
    assert got == expected
    if expected == 0.0:
        assert np.signbit(got) == np.signbit(value)  # f32tof16 keeps the sign of a flushed value


def test_myriadx_nan_passes() -> None:
    assert np.isnan(project(np.array([np.nan], np.float32), MYRIAD)[0])


def test_myriadx_conversion_is_f32tof16_ties_away() -> None:
    x = wide_random(400_000, seed=2)
    ties = np.arange(2049, 4096, 2, dtype=np.float32)  # integers halfway between fp16 neighbours
    x = np.concatenate([x, ties, -ties])
    assert bits_equal(convert(x, MYRIAD), f32tof16_reference(x))
    # The device-side rounding (nearest-even) differs from the host conversion exactly at ties.
    assert np.all(convert(ties, MYRIAD) == ties + 1)
    assert np.all(project(ties, MYRIAD) == np.where((ties - 1) % 4 == 0, ties - 1, ties + 1))


def test_bf16_is_nearest_even_on_eight_bits() -> None:
    rng = np.random.default_rng(3)
    patterns = rng.integers(0, 2**32, 400_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = np.concatenate([patterns, wide_random(100_000, seed=4)])
    assert bits_equal(project(x, BF16), bf16_reference(x))
    assert project(np.array([3.4e38], np.float32), BF16)[0] == np.inf


def test_fp32_is_the_identity() -> None:
    x = wide_random(10_000)
    assert bits_equal(project(x, get_profile("fp32").numerics), x)


@pytest.mark.parametrize(("subnormals", "overflow"), [("flush", "inf"), ("daz", "inf"), ("keep", "saturate")])
def test_an_fp32_profile_with_a_rule_it_cannot_apply_is_refused(subnormals: str, overflow: str) -> None:
    """fp32 is the identity: project() and the twin stored f32 denormals unchanged under a profile
    that said subnormals = "flush" (what runtime probe measures on an f32 device that flushes them)."""
    with pytest.raises(ValueError, match=r"format 'fp32' is the identity.*valid formats for such rules: "
                                         r"\['fp16', 'bf16'\]"):
        Numerics(format="fp32", subnormals=subnormals, overflow=overflow)


def test_representable() -> None:
    halves = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    subnormal = (halves > 0) & (halves < 2.0**-14)
    assert representable(halves, IEEE).all()
    assert (representable(halves, MYRIAD) == ~subnormal).all()
    assert not representable(np.array([1 + 2.0**-11, 65536, 1e-7], np.float32), MYRIAD).any()
    assert representable(np.array([65504, 2.0**-14, 0, np.inf, np.nan], np.float32), MYRIAD).all()


def test_interpolate_semantics_of_the_myriad() -> None:
    interpolate = get_profile("fp16-myriadx").ops.interpolate
    assert interpolate is not None
    assert interpolate.target("linear_onnx", "half_pixel", "round_prefer_floor")[0] == "asymmetric"
    assert interpolate.target("linear", "align_corners", "round_prefer_floor") is None
    assert interpolate.target("nearest", "asymmetric", "floor") is None
    assert interpolate.target("nearest", "half_pixel", "round_prefer_floor") == ("asymmetric", "floor")
    with pytest.raises(ValueError, match="linear_onnx"):
        interpolate.target("cubic", "half_pixel", "round_prefer_floor")
    assert get_profile("fp16-ieee").ops.interpolate is None


def test_every_field_of_every_profile_says_how_it_is_known() -> None:
    """sourced, measured or hypothesis, with a reason: the loader refuses a profile without it."""
    from runtime.profiles import STATUS_FIELDS, STATUS_KINDS

    for name in profile_names():
        status = get_profile(name).status
        assert set(status) == set(STATUS_FIELDS), name
        for text in status.values():
            kind, reason = text.split(":", 1)
            assert kind in STATUS_KINDS and reason.strip(), (name, text)
    # what issue 14 found: the Myriad X's device-side rules are not sourced
    myriad = get_profile("fp16-myriadx").status
    assert all(myriad[f].startswith("hypothesis") for f in ("rounding", "overflow", "subnormals", "accumulate",
                                                            "interpolate"))


def test_a_profile_without_status_is_refused() -> None:
    from runtime.profiles import _status

    with pytest.raises(ValueError, match="missing"):
        _status("x", {"format": "sourced: y"})
    with pytest.raises(ValueError, match="kind one of"):
        _status("x", {f: "guess: z" for f in ("format", "rounding", "conversion_rounding", "overflow",
                                              "subnormals", "accumulate", "convert_input", "interpolate")})


def test_the_docs_table_of_profile_fields_is_the_current_one() -> None:
    from pathlib import Path

    from runtime.profiles import status_table

    docs = (Path(__file__).resolve().parents[2] / "docs" / "devices.md").read_text()
    section = docs.split("<!-- profile-status-table -->\n", 1)[1].split("<!-- /profile-status-table -->", 1)[0]
    assert section == status_table(), "regenerate with: python -m runtime.profiles"


def test_a_profile_states_only_what_differs_from_its_base(tmp_path) -> None:
    """The hypothesis profiles take every other fact from fp16-myriadx (``base``), so the Myriad X's
    facts are written once; a circular or unknown base is an error naming the valid ones."""
    from runtime.profiles import read_profiles

    target, acc, native = (get_profile(n) for n in ("fp16-myriadx", "myriadx-fp16-accumulate", "myriadx-native-interp"))
    assert acc.numerics == dataclasses.replace(target.numerics, accumulate="fp16")
    assert acc.ops == target.ops and native.numerics == target.numerics
    # native-interp honours every coordinate mode but refuses what the plugin refuses (the base's
    # sourced supported_modes; deleting the whole table let a cubic Interpolate run)
    assert native.ops.interpolate is not None and native.ops.interpolate.honour_all
    assert native.ops.interpolate.supported_modes == target.ops.interpolate.supported_modes  # type: ignore[union-attr]
    assert native.ops.interpolate.target("linear", "half_pixel", "round_prefer_floor") is None
    with pytest.raises(ValueError, match="'cubic' is not one of"):
        native.ops.interpolate.target("cubic", "half_pixel", "round_prefer_floor")
    # a hypothesis keeps its base's caveats (what the twin knowingly does not reproduce) but the
    # ones it contradicts: they were all lost
    assert set(native.caveats) > set(target.caveats)
    dropped = [c for c in target.caveats if c not in acc.caveats]
    assert len(dropped) == 1 and dropped[0].startswith("the accumulator") and len(acc.caveats) == len(target.caveats)
    assert acc.status["rounding"] == target.status["rounding"] and acc.status["accumulate"].startswith("hypothesis")
    text = (Path(__file__).resolve().parents[2] / "runtime" / "profiles.toml").read_text()
    assert text.count("native_nearest =") == 1
    bad = tmp_path / "p.toml"
    bad.write_text('[a]\nbase = "b"\n[b]\nbase = "a"\n')
    with pytest.raises(ValueError, match="circular"):
        read_profiles(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text(text.replace('drop_caveats = ["the accumulator', 'drop_caveats = ["the acumulator'))
    with pytest.raises(ValueError, match="drop_caveats.*begin none"):
        read_profiles(typo)


def _precision(value: object) -> str:
    """An execution-graph precision as text on both APIs (2026: an OVAny; 2022.3: a str)."""
    return (value.astype(str) if hasattr(value, "astype") else str(value)).lower()  # type: ignore[attr-defined]


@pytest.mark.parametrize("layer", ["fullyconnected", "convolution 1x1", "convolution 3x3"])
@pytest.mark.parametrize("channels", [3, 64])
def test_the_cpu_in_bf16_accumulates_as_the_bf16_profile_says(layer: str, channels: int) -> None:
    """The ``bf16`` profile's ``accumulate``, measured on the CPU plugin told to compute in bf16,
    on a host that can (AVX512_BF16 or AMX kernels; skipped where the plugin keeps the layer in
    f32). Inputs 2^8, 1, 1 against weights of ones: summed in f32 that is 258, which bf16 stores
    exactly, while a bf16 accumulator rounds 256 + 1 back to 256 each time. A second input,
    1 + 2^-9 (not a bf16 number), must come out as 1: the layer really took bf16 inputs. 64
    channels bring the AMX kernels in where the host has them."""
    from runtime import ov_api

    ops = ov_api.opset(10)
    if layer == "fullyconnected":
        x = ops.parameter([2, channels], ov_api.Type.f32, name="x")
        y = ops.matmul(x, ops.constant(np.ones((channels, 8), np.float32)), False, False)
        data = np.zeros((2, channels), np.float32)
        big, small = (0,), (1,)
    else:
        k = 1 if layer.endswith("1x1") else 3
        x = ops.parameter([1, channels, 8, 8], ov_api.Type.f32, name="x")
        y = ops.convolution(x, ops.constant(np.ones((8, channels, k, k), np.float32)), [1, 1], [k // 2] * 2,
                            [k // 2] * 2, [1, 1])
        data = np.zeros((1, channels, 8, 8), np.float32)
        big, small = (0, ..., 5, 5), (0, ..., 1, 1)  # 3x3 windows around them do not overlap
    data[big][:3] = [2.0 ** 8, 1.0, 1.0]
    data[small][0] = 1.0 + 2.0 ** -9
    # a ReLU after the layer: its result is not the model's output, as inside a network
    try:
        compiled = ov_api.Core().compile_model(ov_api.Model([ops.result(ops.relu(y))], [x], "acc"), "CPU",
                                               {"INFERENCE_PRECISION_HINT": "bf16"})
    except RuntimeError as exc:  # a plugin that cannot compute in bf16 on this host may refuse the hint
        pytest.skip(f"the CPU plugin refuses bf16 here: {str(exc)[:200]}")
    ran = {_precision(op.get_rt_info()["runtimePrecision"]) for op in compiled.get_runtime_model().get_ordered_ops()
           if _precision(op.get_rt_info()["layerType"]) == layer.split()[0]}
    if ran != {"bf16"}:
        pytest.skip(f"the CPU plugin runs this {layer} in {sorted(ran)} here, not bf16")
    request = compiled.create_infer_request()
    request.infer({0: data})
    out = request.get_output_tensor(0).data
    assert float(out[small][0]) == 1.0, "the layer did not round its input to bf16"
    want = 258.0 if get_profile("bf16").numerics.accumulate == "fp32" else 256.0
    assert float(out[big][0]) == want


def test_the_myriad_input_conversion_rounding_is_a_hypothesis() -> None:
    """conversion_rounding acts only on the input tile in the twin (the shipped IRs hold FP16
    weights already), and what the device does with that f32 -> f16 conversion is not measured:
    f32tof16 is sourced for f32 weights only."""
    for name in ("fp16-myriadx", "myriadx-native-interp", "myriadx-fp16-accumulate"):
        text = get_profile(name).status["conversion_rounding"]
        assert text.startswith("hypothesis:") and "input tile" in text and "not measured" in text, (name, text)


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of profiles.toml with ``old`` (which must be in it) replaced by ``new``."""
    text = (Path(__file__).resolve().parents[2] / "runtime" / "profiles.toml").read_text()
    assert old in text
    path = tmp_path / f"variant{len(list(tmp_path.iterdir()))}.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(("old", "new", "error"), [
    # a misspelt key: a TypeError from the dataclass before
    ("accumulate_chunk = 1\n", "accumulate_chunks = 1\n",
     r"'myriadx-fp16-accumulate': numerics: unknown keys \['accumulate_chunks'\].*valid: \['format', 'rounding'"),
    # no description: a KeyError before
    ('description = "IEEE 754 binary16', 'descr = "IEEE 754 binary16', r"'fp16-ieee': profile: unknown keys \['descr'\].*valid: \['description'"),
    ('description = "IEEE 754 binary16', '# description = "IEEE 754 binary16',
     r"'fp16-ieee': profile: unknown keys \[\], missing keys \['description'\]"),
    ('["fp16-myriadx".ops.interpolate]', '["fp16-myriadx".ops.interpolation]',
     r"'fp16-myriadx': ops: unknown keys \['interpolation'\].*valid: \['interpolate'\]"),
    # a misspelt native mode loaded, and align_corners linear was then remapped
    ('native_linear = ["align_corners", "asymmetric"]', 'native_linear = ["align-corners", "asymmetric"]',
     r"'fp16-myriadx': native_linear coordinate_transformation_mode 'align-corners' is not one of \['half_pixel'"),
    # a misspelt remap target loaded, and failed later inside OpenVINO
    ('remap_linear = { coordinate_transformation_mode = "asymmetric" }',
     'remap_linear = { coordinate_transformation_mode = "asymetric" }',
     r"'fp16-myriadx': remap_linear coordinate_transformation_mode 'asymetric' is not one of .*'asymmetric'"),
    ('remap_nearest = { coordinate_transformation_mode = "asymmetric", nearest_mode = "floor" }',
     'remap_nearest = { coordinate_transformation_mode = "asymmetric", nearest_mode = "flor" }',
     r"'fp16-myriadx': remap_nearest nearest_mode 'flor' is not one of \['round_prefer_floor'"),
    # strings where booleans belong: "false" loaded as True, or as a truthy string
    ("honour_all = true", 'honour_all = "false"', r"'myriadx-native-interp': honour_all 'false' must be true or false"),
    ("convert_input = false\n", 'convert_input = "false"\n', r"'fp32': convert_input 'false' must be true or false"),
])
def test_a_profile_file_is_checked_key_by_key_and_errors_name_the_file_and_profile(
        tmp_path: Path, old: str, new: str, error: str) -> None:
    from runtime.profiles import read_profiles

    path = _variant(tmp_path, old, new)
    with pytest.raises(ValueError, match=error) as caught:
        read_profiles(path)
    assert str(caught.value).startswith(f"{path}: profile ")


_HYPOTHESIS = '["x"]\nbase = "fp16-myriadx"\ndescription = "d"\nsource = "s"\n'


@pytest.mark.parametrize(("table", "error"), [
    # TypeError / AttributeError tracebacks before, naming neither the file nor the profile
    (_HYPOTHESIS + "numerics = 3\n", r"'x': numerics must be a table; got 3"),
    (_HYPOTHESIS + 'status = "hypothesis: x"\n', r"'x': status must be a table"),
    (_HYPOTHESIS + '["x".ops]\ninterpolate = 3\n', r"'x': ops.interpolate must be a table"),
    (_HYPOTHESIS + "drop_caveats = [1]\n", r"'x': drop_caveats must be a list"),
    # loaded before, each character of the string a caveat of its own
    (_HYPOTHESIS + 'caveats = "untested"\n', r"'x': caveats must be a list"),
    (_HYPOTHESIS + 'drop_caveats = "the accumulator"\n', r"'x': drop_caveats must be a list"),
], ids=["numerics", "status", "interpolate", "drop-int", "caveats-string", "drop-string"])
def test_a_hypothesis_profile_of_the_wrong_shape_is_a_value_error_naming_it(table: str, error: str) -> None:
    from runtime.profiles import PROFILES_TOML, parse_profiles

    with pytest.raises(ValueError, match=r"^the file: profile " + error):
        parse_profiles(PROFILES_TOML.read_text() + "\n" + table, "the file")


def test_interpolate_semantics_built_in_code_are_checked_too() -> None:
    """A profile changed in code (dataclasses.replace) with a misspelt mode failed inside OpenVINO."""
    interpolate = get_profile("fp16-myriadx").ops.interpolate
    with pytest.raises(ValueError, match=r"remap_linear coordinate_transformation_mode 'asymetric' is not one of"):
        dataclasses.replace(interpolate, remap_linear="asymetric")
    with pytest.raises(ValueError, match=r"honour_all 'false' must be true or false"):
        dataclasses.replace(interpolate, honour_all="false")
    with pytest.raises(ValueError, match=r"convert_input 'false' must be true or false"):
        Numerics("fp16", convert_input="false")  # type: ignore[arg-type]
    # a remap target left out (unknown): a non-native setting is refused, saying so
    unknown = dataclasses.replace(interpolate, remap_linear=None)
    assert unknown.target("linear", "align_corners", "floor") is None
    with pytest.raises(ValueError, match=r"does not say what it runs instead \(remap_linear unset\)"):
        unknown.target("linear", "half_pixel", "floor")


def test_read_profiles_sees_the_file_as_it_is_now(tmp_path: Path) -> None:
    """The same path read again after it changed (a profile appended in the same process): the
    path-keyed cache of config.load_defaults returned the old content."""
    from runtime.profiles import read_profiles

    path = _variant(tmp_path, "accumulate_chunk = 1\n", "accumulate_chunk = 1\n")
    assert read_profiles(path)["myriadx-fp16-accumulate"].numerics.accumulate_chunk == 1
    path.write_text(path.read_text().replace("accumulate_chunk = 1\n", "accumulate_chunk = 4\n", 1))
    assert read_profiles(path)["myriadx-fp16-accumulate"].numerics.accumulate_chunk == 4
