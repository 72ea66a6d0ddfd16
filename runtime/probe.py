"""``runtime probe``: measure how a device computes, from its outputs alone, and write its profile.

Why: the twin's ``fp16-myriadx`` rests partly on hypotheses (``profiles.toml`` says which). A user
with a stick runs this once and gets the device's profile measured, field by field, with the
evidence, in the ``profiles.toml`` schema, and the known profiles it matches.

Each probe is a tiny IR with inputs chosen so that the candidate behaviours give different outputs.
Inputs are exactly representable in the format found, so the input conversion cannot hide what an
op does:

* **format**: ``1 + 2^-k`` for k = 1..24 through Add and through a 1x1 Convolution with a constant
  weight; the largest k kept gives the significand bits (unknown where the two disagree);
* **rounding** of results: sums that are exact ties in the format (``1 + u/2``, ``1 + 3u/2``, and
  their negatives; u the ulp at 1): nearest-even, nearest-away or truncation;
* **conversion** of the input: the same ties as input values, through a Reshape (no arithmetic);
* **overflow**: ``max + 3/4 ulp`` (past the rounding threshold under any nearest rounding, and
  finite in f32, so a device or twin computing in f32 and then storing does not overflow f32
  first, as ``max + max`` does for bf16) saturates or is inf;
* **subnormals**: products at m/4 and 3m/4 (m the smallest normal) and a product whose exact value
  lies just under m and rounds to m (one Multiply, so that accumulation cannot change it): keep,
  flush (judged after rounding), daz (before) or the Myriad rule;
* **accumulation**: a MatMul ``[2^p, 1, 1] . [1, 1, 1]``: f32 sums give 2^p + 2, sequential
  accumulation in the format rounds each 2^p + 1 away;
* **Interpolate**: every (coordinate mode, nearest mode) of nearest and every coordinate mode of
  linear, 5x5 -> 8x8, compared with the CPU's f32 result of every candidate setting: run as written,
  or which setting instead;
* **Sigmoid**: largest error against the exact value rounded to the format (evidence only).

Length: one battery. Its probes, the reading of their outputs and the writing of the profile they
give (which must hold only what the battery saw, in values the schema holds) share the probe
settings and the result's layout, so they stay in one module.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime import ov_api
from runtime.host import describe_host
from runtime.profiles import (ACCUMULATIONS, COORDINATE_MODES, FORMATS, NEAREST_MODES, OVERFLOWS, ROUNDINGS,
                               SUBNORMALS, get_profile, parse_profiles, profile_names, project)

PROBE_VERSION = 1
#: Interpolate settings probed: (mode, coordinate mode, nearest mode or None for linear).
SETTINGS = tuple([("nearest", c, n) for c, n in itertools.product(COORDINATE_MODES, NEAREST_MODES)]
                 + [("linear", c, None) for c in COORDINATE_MODES])
_BITS_TO_FORMAT = {spec.bits: name for name, spec in FORMATS.items()}


def _opsets() -> tuple[Any, Any]:
    return ov_api.opset(1), ov_api.opset(10)


@dataclass
class Runner:
    """Compiles probe IRs for one device the way the runtime would (the twin under ``profile``)."""

    device: str
    profile: str | None = None
    #: what the CPU plugin is told to compute in (``INFERENCE_PRECISION_HINT``); its reference runs
    #: stay f32. bf16 or f16 probe the CPU's own low-precision units where it has them.
    cpu_precision: str = "f32"

    def __post_init__(self) -> None:
        from runtime.device import TWINS, resolve
        from runtime.settings import check_cpu_precision

        self.core = ov_api.Core()
        # As infer and serve do: ``flight`` becomes the flight default, and a device that is not here
        # is a clear ValueError (exit 2 on the command line), not a plugin traceback at compile.
        self.device = resolve(self.device, self.core)
        self.twin = self.device in TWINS
        if self.twin:
            self.profile = self.profile or TWINS[self.device]
        elif self.profile is not None:
            raise ValueError(f"--profile applies to a twin ({list(TWINS)}), not to {self.device!r}")
        check_cpu_precision(self.cpu_precision)
        if self.cpu_precision != "f32" and not self.device.startswith("CPU"):
            raise ValueError(f"a cpu precision applies to the CPU, not to {self.device!r}")

    def run(self, model: Any, *arrays: np.ndarray, as_written: bool = False) -> list[np.ndarray]:
        """Outputs of ``model`` on ``arrays``; ``as_written``: the CPU in f32, the reference."""
        from runtime.emulate import compile_twin

        if self.twin and not as_written:
            compiled, _ = compile_twin(model, str(self.profile), self.core)
        else:
            device = "CPU" if as_written else self.device
            precision = "f32" if as_written else self.cpu_precision
            config = {"INFERENCE_PRECISION_HINT": precision} if device.startswith("CPU") else {}
            compiled = self.core.compile_model(model, device, config)
        request = compiled.create_infer_request()
        request.infer({i: np.ascontiguousarray(a, dtype=np.float32) for i, a in enumerate(arrays)})
        return [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]


def _params(*shapes: list[int]) -> list[Any]:
    ops, _ = _opsets()
    return [ops.parameter(shape, ov_api.Type.f32, name=f"in{i}") for i, shape in enumerate(shapes)]


def _model(output: Any, params: list[Any]) -> Any:
    ops, _ = _opsets()
    return ov_api.Model([ops.result(output)], params, "probe")


def _binary(runner: Runner, op: str, a: list[float], b: list[float]) -> np.ndarray:
    ops, _ = _opsets()
    pa, pb = _params([len(a)], [len(b)])
    return runner.run(_model(getattr(ops, op)(pa, pb), [pa, pb]), np.array(a), np.array(b))[0]


def _passthrough(runner: Runner, x: list[float]) -> np.ndarray:
    ops, _ = _opsets()
    (p,) = _params([1, len(x)])
    out = ops.reshape(p, ops.constant(np.array([len(x)], np.int64)), special_zero=False)
    return runner.run(_model(out, [p]), np.array([x]))[0]


def _matmul(runner: Runner, a: list[float], b: list[float]) -> float:
    ops, _ = _opsets()
    pa, pb = _params([1, len(a)], [len(b), 1])
    out = ops.matmul(pa, pb, False, False)
    return float(runner.run(_model(out, [pa, pb]), np.array([a]), np.array(b).reshape(-1, 1))[0].reshape(-1)[0])


def _convolution(runner: Runner, x: list[float]) -> np.ndarray:
    """``x`` through a 1x1 Convolution with the constant weight 1: a device may compute the layers
    with weights in a format other than its element-wise ops', and a network spends its arithmetic
    in those."""
    ops, _ = _opsets()
    (p,) = _params([1, 1, 1, len(x)])
    out = ops.convolution(p, ops.constant(np.ones((1, 1, 1, 1), np.float32)), [1, 1], [0, 0], [0, 0], [1, 1])
    return runner.run(_model(out, [p]), np.array(x).reshape(1, 1, 1, -1))[0].reshape(-1)


def _bits_kept(got: np.ndarray) -> int:
    """Significant bits of a format from ``got[k - 1]``, the device's 1 + 2^-k for k = 1..24: the
    largest k kept exactly, with every smaller k kept too, plus the hidden bit."""
    kept = [k for k in range(1, len(got) + 1) if float(got[k - 1]) == 1.0 + _pow2(-k)]
    return 1 + max((k for k in kept if all(j in kept for j in range(1, k + 1))), default=0)


def _classify_ties(got: np.ndarray, one_plus: float, u: float) -> str:
    """Which rounding turned [1+u/2, 1+3u/2, -(1+u/2), -(1+3u/2)] into ``got``."""
    expect = {
        "nearest_even": [1, 1 + 2 * u, -1, -(1 + 2 * u)],
        "nearest_away": [1 + u, 1 + 2 * u, -(1 + u), -(1 + 2 * u)],
        "truncate": [1, 1 + u, -1, -(1 + u)],
    }
    for name, values in expect.items():
        if np.array_equal(got.astype(np.float64), np.array(values, np.float64)):
            return name
    return f"unknown {got.tolist()}"


def _pow2(e: int) -> float:
    return float(2.0 ** e)


def probe_numerics(runner: Runner) -> dict[str, Any]:
    """The numerics fields, each with the outputs that decided it."""
    out: dict[str, Any] = {}
    ks = list(range(1, 25))
    bits = _bits_kept(_binary(runner, "add", [1.0] * len(ks), [_pow2(-k) for k in ks]))
    conv_bits = _bits_kept(_convolution(runner, [1.0 + _pow2(-k) for k in ks]))
    fmt = _BITS_TO_FORMAT.get(bits, f"unknown ({bits} significant bits)")
    if conv_bits != bits:  # e.g. the CPU plugin told bf16 lowers only the layers with weights
        fmt = f"unknown (Add keeps {bits} significant bits, a Convolution with weights {conv_bits})"
    out["format"] = {"value": fmt, "evidence": {"significant_bits": bits, "convolution_significant_bits": conv_bits}}
    spec = FORMATS.get(fmt, FORMATS["fp32"])
    u = _pow2(-(spec.bits - 1))
    ties_a, ties_b = [1.0, 1.0, -1.0, -1.0], [u / 2, 3 * u / 2, -u / 2, -3 * u / 2]
    got = _binary(runner, "add", ties_a, ties_b)
    out["rounding"] = {"value": _classify_ties(got, 1.0, u), "evidence": {"sums": got.tolist()}}
    if spec.bits < 24:
        x = [a + b for a, b in zip(ties_a, ties_b)]  # exact in f32, ties in the format
        got = _passthrough(runner, x)
        converted = not np.array_equal(got, np.array(x, np.float32))
        out["convert_input"] = {"value": converted, "evidence": {"inputs": x, "outputs": got.tolist()}}
        out["conversion_rounding"] = {"value": _classify_ties(got, 1.0, u) if converted else "nearest_even",
                                      "evidence": {"outputs": got.tolist()}}
    else:
        out["convert_input"] = {"value": False, "evidence": {"note": "f32 storage: nothing to convert"}}
        out["conversion_rounding"] = {"value": "nearest_even", "evidence": {"note": "not observable in f32"}}
    big = spec.max_finite
    # 3/4 of the ulp at max: exact in f32 and in the format, and no tie, so the rounding rule
    # cannot decide it; max + max overflows f32 itself for bf16, and an f32 inf saturates nowhere
    past = 1.5 * _pow2(int(math.floor(math.log2(big))) - spec.bits)
    got = _binary(runner, "add", [big, -big], [past, -past])
    overflow = "inf" if np.isinf(got).all() else ("saturate" if np.array_equal(got, [big, -big]) else f"unknown {got.tolist()}")
    out["overflow"] = {"value": overflow, "evidence": {"max_plus_three_quarter_ulp": got.tolist()}}
    out["subnormals"] = _subnormals(runner, spec)
    out["accumulate"] = _accumulation(runner, spec)
    # the sequential case is the one this probe can tell (chunk 1); see the note in its evidence
    out["accumulate_chunk"] = {"value": 1, "evidence": {"note": "only chunk 1 (sequential) is told apart"}}
    return out


def _subnormals(runner: Runner, spec: Any) -> dict[str, Any]:
    e = int(round(math.log2(spec.min_normal)))
    m = spec.min_normal
    # m/4 and 3m/4 as products of normal, exactly representable factors
    quarter = float(_binary(runner, "multiply", [_pow2(e // 2)], [_pow2(e - 2 - e // 2)])[0])
    three_q = float(_binary(runner, "multiply", [1.5 * _pow2(e // 2)], [_pow2(e - 1 - e // 2)])[0])
    # (1 - 2^-(p-1)) (1 + 2^-(p-1)) m = m (1 - 2^-(2p-2)): both factors held at p bits, the product
    # exact in f32 (2p - 2 <= 24), within half an ulp under m, so it rounds to m. One Multiply, not a
    # MatMul sum: with fp16 accumulation a sum's terms are rounded (and read as zero under daz)
    # one by one, and daz then read as flush.
    d = _pow2(-(spec.bits - 1))
    just_under = float(_binary(runner, "multiply", [(1 - d) * _pow2(e // 2)], [(1 + d) * _pow2(e - e // 2)])[0])
    seen = (quarter, three_q, just_under)
    table = {"keep": (m / 4, 0.75 * m, m), "flush": (0.0, 0.0, m), "myriad": (0.0, m, m), "daz": (0.0, 0.0, 0.0)}
    value = next((k for k, v in table.items() if all(abs(a) == b for a, b in zip(seen, v))), f"unknown {seen}")
    return {"value": value, "evidence": {"m/4": quarter, "3m/4": three_q, "m(1-2^-(2p-2))": just_under,
                                         "smallest_normal": m}}


def _accumulation(runner: Runner, spec: Any) -> dict[str, Any]:
    """``[2^p, 1, 1] . [1, 1, 1]`` (p significand bits): an f32 sum is 2^p + 2, exact in the
    format; sequential accumulation in the format rounds 2^p + 1 at each step (to 2^p with ties to
    even, to 2^p + 2 and then 2^p + 4 with ties away)."""
    if spec.bits >= 24:
        return {"value": "fp32", "evidence": {"note": "f32 storage: not told apart from f32 sums"}}
    big = float(2 ** spec.bits)  # spec.bits counts the hidden bit: the spacing above 2^bits is 2
    total = _matmul(runner, [big, 1.0, 1.0], [1.0, 1.0, 1.0])
    value = ("fp32" if total == big + 2 else "fp16" if total in (big, big + 4) else f"unknown (sum {total})")
    return {"value": value, "evidence": {"terms": [big, 1.0, 1.0], "sum": total, "f32_sum": big + 2,
                                         "note": "fp16 sums in chunks of 3 or more terms read as fp32 here"}}


#: Output sizes the 5x5 input is resized to: up by 1.6 and down by 0.6, so that settings which
#: agree on one geometry are told apart by the other.
_SIZES = ((8, 8), (3, 3))


def _interpolate_model(setting: tuple[str, str, str | None]) -> Any:
    ops, ops10 = _opsets()
    mode, coord, nearest = setting
    (p,) = _params([1, 1, 5, 5])
    outs = []
    for size in _SIZES:
        # Interpolate-4 (what the 2022.3 toolkit reads), sizes mode
        outs.append(ops.result(ops10.interpolate(
            p, ops.constant(np.array(size, np.int64)), ops.constant(np.array([s / 5 for s in size], np.float32)),
            mode, "sizes", coordinate_transformation_mode=coord, nearest_mode=nearest or "round_prefer_floor",
            axes=ops.constant(np.array([2, 3], np.int64)))))
    return ov_api.Model(outs, [p], "probe-interpolate")


def probe_interpolate(runner: Runner, bits: int = 24) -> dict[str, Any]:
    """For each setting: run as written, or the settings whose f32 result it gave instead (the
    nearest reference; none if even that is further than the format's rounding explains)."""
    x = (np.arange(25, dtype=np.float32) / 32).reshape(1, 1, 5, 5)  # small values: exact at 8 bits
    def flat(outputs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([o.reshape(-1) for o in outputs]).astype(np.float64)
    refs = {s: flat(runner.run(_interpolate_model(s), x, as_written=True)) for s in SETTINGS}
    tolerance = 2.0 ** -(bits - 1)  # one ulp at 1 in the format: more than rounding alone moves a value here
    rows = []
    for setting in SETTINGS:
        try:
            got = flat(runner.run(_interpolate_model(setting), x))
        except Exception as exc:  # refused by the device: a fact too
            rows.append({"setting": list(setting), "refused": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        distance = {s: float(np.abs(got - r).max()) for s, r in refs.items() if s[0] == setting[0]}
        best = min(distance.values())
        same = [list(s) for s, d in distance.items() if d <= best + 1e-9] if best <= tolerance else []
        rows.append({"setting": list(setting), "as_written": list(setting) in same, "matches": same,
                     "distance": best})
    return {"input": "5x5 ramp (0..24)/32 -> 8x8 and 3x3 (sizes)", "settings": rows}


def _semantics(interp: dict[str, Any]) -> dict[str, Any]:
    """The ``[ops.interpolate]`` table the observations support, always: a profile without one runs
    every Interpolate mode as written, cubic included, which the battery never tried.

    ``supported_modes`` holds the modes that were probed and ran: nearest, and linear with
    linear_onnx (the schema gives both one native list and one remap target, and the MYRIAD plugin
    accepts linear_onnx as linear), so linear_onnx stands or falls with linear. ``honour_all``: no
    setting moved. A remap target is the first match most moved settings of the mode share, stated
    only when every moved setting of the mode matches it; otherwise it is None (left out of the
    TOML): what the device runs instead is unknown, and the twin refuses such a setting rather than
    guess one. Every key is present (None where unset) so that callers can print the table.
    """
    rows = [r for r in interp["settings"] if "refused" not in r]
    ran = {r["setting"][0] for r in rows}
    moved = [r for r in rows if not r["as_written"]]
    native_nearest = [r["setting"][1:] for r in rows if r["as_written"] and r["setting"][0] == "nearest"]
    native_linear = [r["setting"][1] for r in rows if r["as_written"] and r["setting"][0] == "linear"]
    target: dict[str, list[str] | None] = {}
    for mode in ("nearest", "linear"):
        mine = [r for r in moved if r["setting"][0] == mode]
        votes = Counter(tuple(r["matches"][0]) for r in mine if r["matches"])
        best = list(votes.most_common(1)[0][0]) if votes else None
        target[mode] = best if best is not None and all(best in r["matches"] for r in mine) else None
    return {"native_nearest": native_nearest, "native_linear": native_linear,
            "remap_nearest": {"coordinate_transformation_mode": target["nearest"][1], "nearest_mode": target["nearest"][2]}
            if target["nearest"] else None,
            "remap_linear": {"coordinate_transformation_mode": target["linear"][1]} if target["linear"] else None,
            "supported_modes": (["nearest"] if "nearest" in ran else []) + (["linear", "linear_onnx"] if "linear" in ran else []),
            "honour_all": not moved}


def probe_sigmoid(runner: Runner, fmt: str) -> dict[str, Any]:
    ops, _ = _opsets()
    (p,) = _params([1001])
    x = np.linspace(-8, 8, 1001).astype(np.float32)
    got = runner.run(_model(ops.sigmoid(p), [p]), x)[0].astype(np.float64)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    numerics = get_profile(fmt if fmt in ("fp16-ieee", "bf16", "fp32") else "fp32").numerics
    rounded = project(exact.astype(np.float32), numerics).astype(np.float64)
    return {"max_abs_error": float(np.abs(got - exact).max()),
            "max_abs_error_of_exact_rounded": float(np.abs(rounded - exact).max())}


def _expected_interpolate(profile: Any, setting: tuple[str, str, str | None]) -> tuple[str, str, str | None]:
    semantics = profile.ops.interpolate
    if semantics is None:
        return setting
    mode, coord, nearest = setting
    target = semantics.target(mode, coord, nearest or "round_prefer_floor")
    if target is None:
        return setting
    return (mode, target[0], target[1] if mode == "nearest" else None)


def matching_profiles(numerics: dict[str, Any], interp: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """Known profiles whose every field (and Interpolate behaviour on the battery) was observed."""
    matches, mismatches = [], {}
    for name in profile_names():
        profile = get_profile(name)
        wrong = []
        for field, seen in numerics.items():
            expected = getattr(profile.numerics, field)
            if field == "conversion_rounding" and not profile.numerics.convert_input:
                continue
            if seen["value"] != expected:
                wrong.append(f"{field}: measured {seen['value']!r}, profile {expected!r}")
        for row in interp["settings"]:
            setting = tuple(row["setting"])  # type: ignore[arg-type]
            try:
                expected = list(_expected_interpolate(profile, setting))  # type: ignore[arg-type]
            except ValueError:  # the profile refuses the mode
                if "refused" not in row:
                    wrong.append(f"interpolate {setting}: ran, profile refuses it")
                continue
            if "refused" in row or expected not in row["matches"]:
                wrong.append(f"interpolate {setting}: profile runs {expected}, measured {row.get('matches', 'refused')}")
        (mismatches.__setitem__(name, wrong) if wrong else matches.append(name))
    return matches, mismatches


def probe(device: str, profile: str | None = None, cpu_precision: str = "f32") -> dict[str, Any]:
    """Run the battery on ``device`` (a twin under ``profile``; the CPU told to compute in
    ``cpu_precision``) and describe what it found."""
    runner = Runner(device, profile, cpu_precision)
    numerics = probe_numerics(runner)
    interp = probe_interpolate(runner, numerics["format"]["evidence"]["significant_bits"])
    matches, mismatches = matching_profiles(numerics, interp)
    fmt = numerics["format"]["value"]
    return {  # the device resolved: a profile measured through "flight" names what it ran on
        "device": runner.device, "twin_profile": runner.profile, "openvino": ov_api.version(),
        "cpu_precision": cpu_precision if runner.device.startswith("CPU") else None,
        "probe_version": PROBE_VERSION, "date": _dt.date.today().isoformat(), "host": describe_host(),
        "numerics": numerics, "interpolate": interp, "interpolate_semantics": _semantics(interp),
        "sigmoid": probe_sigmoid(runner, {"fp16": "fp16-ieee", "bf16": "bf16"}.get(fmt, "fp32")),
        "matches": matches, "mismatches": mismatches,
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


#: The numerics fields whose value is a choice, and the choices the schema holds.
_CHOICES: dict[str, tuple[str, ...]] = {"format": tuple(FORMATS), "rounding": ROUNDINGS,
                                        "conversion_rounding": ROUNDINGS, "overflow": OVERFLOWS,
                                        "subnormals": SUBNORMALS, "accumulate": ACCUMULATIONS}


def to_toml(result: dict[str, Any], name: str | None = None) -> str:
    """The measured profile as a ``profiles.toml`` table, every field's status ``measured``.

    The text always loads, alone or appended to ``profiles.toml`` (what docs/devices.md says to do
    with it): a measured value the schema cannot hold (a rounding that truncates, "unknown ...")
    would make every profile lookup fail. Then the whole table is written commented out, under a
    comment naming each such field, its measured value and the valid ones: the measurement is kept,
    and no profile claims a value that was not measured (leaving out one field would load the
    dataclass default instead).
    """
    name = name or f"measured-{result['device']}"
    lines = _profile_lines(result, name)
    problems = [f"{field} = {result['numerics'][field]['value']!r} measured; the schema holds {list(choices)}"
                for field, choices in _CHOICES.items() if result["numerics"][field]["value"] not in choices]
    if not problems:
        try:  # whatever else the schema refuses (the loader's own checks), caught the same way
            parse_profiles("\n".join(lines) + "\n", "the measured profile")
        except ValueError as exc:
            problems = [str(exc)]
    if not problems:
        return "\n".join(lines) + "\n"
    header = [f"# runtime probe: profile {name!r} is commented out: the profiles.toml schema cannot hold"]
    header += ["#   " + p.replace("\n", " ") for p in problems]
    return "\n".join(header + [("# " + line) if line else "#" for line in lines]) + "\n"


def _profile_lines(result: dict[str, Any], name: str) -> list[str]:
    """The lines of the measured profile's tables, unchecked."""
    key = _toml_value(name)  # a quoted key: a device name may hold dots
    how = (f"measured: runtime probe v{result['probe_version']} on {result['device']}"
           f"{' (twin, profile ' + str(result['twin_profile']) + ')' if result['twin_profile'] else ''}"
           f"{' (INFERENCE_PRECISION_HINT ' + str(result['cpu_precision']) + ')' if result.get('cpu_precision') else ''}, "
           f"OpenVINO {result['openvino']}, {result['date']}")
    numerics = {k: v["value"] for k, v in result["numerics"].items()}
    lines = [f"[{key}]",
             f"description = {_toml_value('measured by runtime probe on ' + result['device'] + '; matches ' + (', '.join(result['matches']) or 'no known profile'))}",
             f"source = {_toml_value(how)}", "", f"[{key}.numerics]"]
    lines += [f"{k} = {_toml_value(numerics[k])}" for k in ("format", "rounding", "conversion_rounding", "overflow",
                                                            "subnormals", "accumulate", "accumulate_chunk",
                                                            "convert_input")]
    semantics = result["interpolate_semantics"]
    # with honour_all the native lists say nothing more; an unset remap target is left out
    written = ("supported_modes", "honour_all") if semantics["honour_all"] else tuple(semantics)
    lines += ["", f"[{key}.ops.interpolate]"]
    lines += [f"{k} = {_toml_value(semantics[k])}" for k in written if semantics[k] is not None]
    lines += ["", f"[{key}.status]"]
    lines += [f"{k} = {_toml_value(_status(result, k, how))}" for k in ("format", "rounding", "conversion_rounding",
                                                                       "overflow", "subnormals", "accumulate",
                                                                       "convert_input", "interpolate")]
    return lines


def _status(result: dict[str, Any], field: str, how: str) -> str:
    """``how`` for a field the battery observed; a hypothesis saying why for one it wrote without
    seeing (a device that converts no input shows no conversion rounding; f32 storage hides how it
    sums): the project labels every device behaviour measured, sourced or hypothesis, and such a
    value is the schema's placeholder, not a measurement."""
    numerics = result["numerics"]
    if field == "conversion_rounding" and not numerics["convert_input"]["value"]:
        note = numerics["conversion_rounding"].get("evidence", {}).get("note", "the input is not converted")
        return f"hypothesis: not observed ({note}), a placeholder written by runtime probe ({how})"
    if field == "accumulate" and "sum" not in numerics["accumulate"].get("evidence", {}):
        note = numerics["accumulate"].get("evidence", {}).get("note", "no sum measured")
        return f"hypothesis: not observed ({note}), a placeholder written by runtime probe ({how})"
    return how
