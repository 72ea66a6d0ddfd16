"""Target profiles: how a target computes (numerics and op semantics), loaded from ``profiles.toml``.

One profile object serves twice: :mod:`runtime.emulate` rewrites an IR so that the CPU computes the
target's way (``myriadx-emu``), and search's deployment-aligned fine-tuning runs its forward pass
through :func:`project`. The profiles are data so that a new target is a new TOML table, not code.

:func:`project` is the numpy *reference* of a storage format: exact, bit-level, and the yardstick
the graph rewrite is tested against. Facts and their sources are in ``shared/reference/myriadx.md``
and in the comments of ``profiles.toml``.

Length: one schema. The dataclasses, the loader that checks a file against them key by key (a
profile appended by ``runtime probe`` must fail loudly, naming the file and the profile, or not at
all) and the numpy reference of the formats they name are one definition of what a profile is.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # the OpenVINO 2022.3 environment runs Python 3.10
    import tomli as tomllib

PROFILES_TOML = Path(__file__).with_name("profiles.toml")

ROUNDINGS = ("nearest_even", "nearest_away")
OVERFLOWS = ("saturate", "inf")
SUBNORMALS = ("keep", "flush", "daz", "myriad")
ACCUMULATIONS = ("fp32", "fp16")
#: The fields of a profile whose provenance its ``status`` table gives, and the kinds of provenance.
STATUS_FIELDS = ("format", "rounding", "conversion_rounding", "overflow", "subnormals", "accumulate",
                 "convert_input", "interpolate")
STATUS_KINDS = ("sourced", "measured", "hypothesis")


@dataclass(frozen=True)
class FormatSpec:
    """The constants of a binary floating-point storage format, as seen from float32."""

    bits: int           # significant bits, the hidden one included
    min_normal: float   # smallest positive normal value
    max_finite: float   # largest finite value
    step: float         # spacing of the subnormals (the smallest positive subnormal)


FORMATS: dict[str, FormatSpec] = {
    "fp16": FormatSpec(bits=11, min_normal=2.0**-14, max_finite=65504.0, step=2.0**-24),
    "bf16": FormatSpec(bits=8, min_normal=2.0**-126, max_finite=(2 - 2.0**-7) * 2.0**127, step=2.0**-133),
    "fp32": FormatSpec(bits=24, min_normal=2.0**-126, max_finite=float(np.finfo(np.float32).max),
                       step=2.0**-149),
}


def _check(what: str, value: Any, valid: tuple[str, ...] | list[str]) -> None:
    if value not in valid:
        raise ValueError(f"{what} {value!r} is not one of {list(valid)}")


@dataclass(frozen=True)
class Numerics:
    """How values are stored: format, rounding, overflow, subnormals, accumulation, input conversion.

    ``rounding`` applies to results the target computes; ``conversion_rounding`` to host-side
    f32 -> format conversion (the input tile and f32 weights), which on the Myriad X is a different
    routine with a different tie rule.
    """

    format: str
    rounding: str = "nearest_even"
    conversion_rounding: str = "nearest_even"
    overflow: str = "inf"
    subnormals: str = "keep"
    accumulate: str = "fp32"
    convert_input: bool = True
    #: with accumulate = "fp16": input channels (or MatMul terms) summed exactly per chunk, the
    #: chunks' partial sums then added one by one in the format (1: fully sequential over channels)
    accumulate_chunk: int = 1

    def __post_init__(self) -> None:
        _check("format", self.format, list(FORMATS))
        _check("rounding", self.rounding, ROUNDINGS)
        _check("conversion_rounding", self.conversion_rounding, ROUNDINGS)
        _check("overflow", self.overflow, OVERFLOWS)
        _check("subnormals", self.subnormals, SUBNORMALS)
        _check("accumulate", self.accumulate, ACCUMULATIONS)
        # a bool is an int in Python: accumulate_chunk = true would read as 1
        if isinstance(self.accumulate_chunk, bool) or not (isinstance(self.accumulate_chunk, int)
                                                           and self.accumulate_chunk >= 1):
            raise ValueError(f"accumulate_chunk {self.accumulate_chunk!r} must be an integer >= 1")
        # a real boolean: the string "false" is truthy and would convert the input
        if not isinstance(self.convert_input, bool):
            raise ValueError(f"convert_input {self.convert_input!r} must be true or false (a TOML boolean)")
        # fp32 is the identity: project() and the twin store every f32 value unchanged, so a flush
        # or saturation rule (an f32 device that flushes denormals, as runtime probe measures a GPU)
        # would be silently ignored by both; refused, so the probe writes such a profile commented out
        if self.format == "fp32" and (self.subnormals, self.overflow) != ("keep", "inf"):
            raise ValueError(f"format 'fp32' is the identity (nothing is rounded, flushed or saturated): "
                             f"subnormals must be 'keep' and overflow 'inf', not {self.subnormals!r} and "
                             f"{self.overflow!r}; valid formats for such rules: {[f for f in FORMATS if f != 'fp32']}")

    @property
    def spec(self) -> FormatSpec:
        return FORMATS[self.format]

    @property
    def is_identity(self) -> bool:
        """True when every float32 value is stored unchanged (nothing to emulate)."""
        return self.format == "fp32"


INTERPOLATE_MODES = ("nearest", "linear", "linear_onnx", "cubic", "bilinear_pillow", "bicubic_pillow")
#: OpenVINO's Interpolate enum names (op::util::InterpolateBase): a setting outside them fails only
#: later, inside the plugin, so a profile naming one is refused when it is loaded.
COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "asymmetric", "tf_half_pixel_for_nn", "align_corners")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


@dataclass(frozen=True)
class InterpolateSemantics:
    """Which Interpolate settings a target runs natively, and what it silently runs instead."""

    native_nearest: tuple[tuple[str, str], ...]   # (coordinate_transformation_mode, nearest_mode)
    native_linear: tuple[str, ...]                # coordinate_transformation_mode
    #: what a non-native nearest becomes; None: not known (a probe matched no candidate), and a
    #: non-native nearest is refused rather than guessed
    remap_nearest: tuple[str, str] | None
    remap_linear: str | None                      # what a non-native linear becomes; None as above
    supported_modes: tuple[str, ...]
    #: every coordinate mode of a supported Interpolate mode runs as written (a hypothesis about the
    #: firmware); the modes the target refuses are refused all the same
    honour_all: bool = False

    def __post_init__(self) -> None:
        # Checked here, not only in the loader: a profile built in code (dataclasses.replace) with a
        # misspelt mode would otherwise fail inside OpenVINO, far from the typo.
        for mode in self.supported_modes:
            _check("supported Interpolate mode", mode, INTERPOLATE_MODES)
        for coordinate_mode, nearest_mode in self.native_nearest:
            _check("native_nearest coordinate_transformation_mode", coordinate_mode, COORDINATE_MODES)
            _check("native_nearest nearest_mode", nearest_mode, NEAREST_MODES)
        for coordinate_mode in self.native_linear:
            _check("native_linear coordinate_transformation_mode", coordinate_mode, COORDINATE_MODES)
        if self.remap_nearest is not None:
            _check("remap_nearest coordinate_transformation_mode", self.remap_nearest[0], COORDINATE_MODES)
            _check("remap_nearest nearest_mode", self.remap_nearest[1], NEAREST_MODES)
        if self.remap_linear is not None:
            _check("remap_linear coordinate_transformation_mode", self.remap_linear, COORDINATE_MODES)
        if not isinstance(self.honour_all, bool):
            raise ValueError(f"honour_all {self.honour_all!r} must be true or false (a TOML boolean)")

    def target(self, mode: str, coordinate_mode: str, nearest_mode: str) -> tuple[str, str] | None:
        """(coordinate_transformation_mode, nearest_mode) the target runs, or None when native.

        Raises:
            ValueError: for a mode the target refuses (its plugin would fail to compile the model),
                and for a non-native setting whose remap target the profile does not know.
        """
        _check("Interpolate mode on this target:", mode, self.supported_modes)
        if self.honour_all:
            return None
        if mode == "nearest":
            if (coordinate_mode, nearest_mode) in self.native_nearest:
                return None
            remapped = self.remap_nearest
        elif coordinate_mode in self.native_linear:
            return None
        else:
            # nearest_mode is ignored by linear modes; it is kept so the rewritten op reads the same.
            remapped = None if self.remap_linear is None else (self.remap_linear, nearest_mode)
        if remapped is None:
            raise ValueError(f"Interpolate {mode} {coordinate_mode}/{nearest_mode} does not run natively on this "
                             f"target and the profile does not say what it runs instead (remap_{'nearest' if mode == 'nearest' else 'linear'} unset)")
        return remapped


@dataclass(frozen=True)
class OpSemantics:
    """Where the target runs an op differently from what the IR says. None: as written."""

    interpolate: InterpolateSemantics | None = None


@dataclass(frozen=True)
class TargetProfile:
    """A target: its numerics, its op semantics, where those facts come from, and their limits."""

    name: str
    description: str
    numerics: Numerics
    ops: OpSemantics
    source: str
    caveats: tuple[str, ...] = ()   # what the twin of this target knowingly does not reproduce
    #: field -> "sourced: ...", "measured: ..." or "hypothesis: ..." (STATUS_FIELDS, every one)
    status: dict[str, str] = field(default_factory=dict)


#: The keys of a profile table, of its ``numerics`` and ``ops`` tables and of ``ops.interpolate``.
PROFILE_KEYS = ("description", "source", "caveats", "base", "drop_caveats", "numerics", "ops", "status")
NUMERICS_KEYS = tuple(f.name for f in dataclasses.fields(Numerics))
OPS_KEYS = ("interpolate",)
INTERPOLATE_KEYS = ("native_nearest", "native_linear", "remap_nearest", "remap_linear", "supported_modes",
                    "honour_all")


def _keys(what: str, table: Any, valid: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``table`` if it is a table with only ``valid`` keys and every ``required`` one; otherwise a
    ValueError listing them (a misspelt key is an error, not a default silently used)."""
    if not isinstance(table, dict):
        raise ValueError(f"{what} must be a table with keys {list(valid)}; got {table!r}")
    unknown = [k for k in table if k not in valid]
    missing = [k for k in required if k not in table]
    if unknown or missing:
        raise ValueError(f"{what}: unknown keys {unknown}, missing keys {missing}; valid: {list(valid)}")
    return table


def _strings(what: str, value: Any, length: int | None = None) -> tuple[str, ...]:
    """``value`` as a tuple of strings (of ``length`` items when given), else a ValueError."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) \
            or (length is not None and len(value) != length):
        raise ValueError(f"{what} must be a list of {length or 'any number of'} strings; got {value!r}")
    return tuple(value)


def _interpolate(table: dict[str, Any]) -> InterpolateSemantics:
    """An ``ops.interpolate`` table, checked key by key and mode by mode against OpenVINO's names.

    With ``honour_all`` the native and remap entries say nothing and may be left out; without it
    the native lists are required. A remap target may be left out: the profile then does not know
    what a non-native setting runs (a probe that matched no candidate), and the twin refuses it.
    """
    if not isinstance(table, dict):
        raise ValueError(f"ops.interpolate must be a table with keys {list(INTERPOLATE_KEYS)} (or false under a "
                         f"base: every Interpolate as written); got {table!r}")
    honour_all = table.get("honour_all", False)
    required = ("supported_modes",) if honour_all is True else ("supported_modes", "native_nearest", "native_linear")
    _keys("ops.interpolate", table, INTERPOLATE_KEYS, required)
    nearest = tuple(_strings("native_nearest entry [coordinate_transformation_mode, nearest_mode]", pair, 2)  # type: ignore[misc]
                    for pair in table.get("native_nearest", []))
    remap_nearest = None
    if "remap_nearest" in table:
        remap = _keys("ops.interpolate.remap_nearest", table["remap_nearest"],
                      ("coordinate_transformation_mode", "nearest_mode"), ("coordinate_transformation_mode", "nearest_mode"))
        remap_nearest = (remap["coordinate_transformation_mode"], remap["nearest_mode"])
    remap_linear = None
    if "remap_linear" in table:
        remap_linear = _keys("ops.interpolate.remap_linear", table["remap_linear"],
                             ("coordinate_transformation_mode",), ("coordinate_transformation_mode",)
                             )["coordinate_transformation_mode"]
    return InterpolateSemantics(
        native_nearest=nearest,
        native_linear=_strings("native_linear", table.get("native_linear", [])),
        remap_nearest=remap_nearest,
        remap_linear=remap_linear,
        supported_modes=_strings("supported_modes", table["supported_modes"]),
        honour_all=honour_all,
    )


@functools.lru_cache(maxsize=1)
def _load() -> dict[str, TargetProfile]:
    return read_profiles(PROFILES_TOML)


def _resolve(name: str, tables: dict[str, Any], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Profile ``name``'s table with its ``base`` applied: the base's ``numerics``, ``ops`` and
    ``status`` entries, overridden by the profile's own (``ops.interpolate = false``: every
    Interpolate as written). So a hypothesis that differs from a target in one field states that
    field only, and the target's other facts stay in one place."""
    table = tables[name]
    # a scalar where a table belongs failed inside the merge or the checks as a TypeError, naming
    # neither the file nor the profile
    for key in ("numerics", "ops", "status"):
        if not isinstance(table.get(key, {}), dict):
            raise ValueError(f"{key} must be a table; got {table[key]!r}")
    base = table.get("base")
    if base is None:
        return table
    if not isinstance(base, str) or base not in tables or base in seen or not isinstance(tables[base], dict):
        raise ValueError(f"profile {name!r}: base {base!r} is unknown or circular; valid: {sorted(set(tables) - {name})}")
    parent = _resolve(base, tables, seen + (name,))
    merged = {**{k: v for k, v in parent.items() if k not in ("numerics", "ops", "status", "caveats")}, **table}
    for key in ("numerics", "ops", "status"):
        merged[key] = {**parent.get(key, {}), **table.get(key, {})}
    interpolate = (parent.get("ops", {}).get("interpolate"), table.get("ops", {}).get("interpolate"))
    if all(isinstance(t, dict) for t in interpolate):  # a hypothesis that changes one Interpolate rule
        merged["ops"]["interpolate"] = {**interpolate[0], **interpolate[1]}
    if merged["ops"].get("interpolate") is False:
        del merged["ops"]["interpolate"]
    merged["caveats"] = _inherit_caveats(name, list(parent.get("caveats", [])), table)
    return merged


def _inherit_caveats(name: str, inherited: list[str], table: dict[str, Any]) -> list[str]:
    """The base's caveats, but those the profile contradicts (``drop_caveats``: the start of each),
    then its own: what the base's twin knowingly does not reproduce, its hypotheses do not either."""
    # lists of strings: a bare string was split into its characters, each one a caveat (or a prefix)
    drops = list(_strings("drop_caveats", table.get("drop_caveats", [])))
    inherited = list(_strings("caveats", inherited))
    unknown = [d for d in drops if not any(c.startswith(d) for c in inherited)]
    if unknown:
        raise ValueError(f"profile {name!r} drop_caveats {unknown} begin none of its base's caveats: {inherited}")
    kept = [c for c in inherited if not any(c.startswith(d) for d in drops)]
    return kept + list(_strings("caveats", table.get("caveats", [])))


def read_profiles(path: Path) -> dict[str, TargetProfile]:
    """Every profile of a TOML file in the ``profiles.toml`` schema (e.g. one ``runtime probe`` wrote).

    Read afresh on every call (not through config's path-keyed cache): a profile appended to the
    file in the same process is seen. Every error is a ValueError naming the file and the profile:
    a bad profile appended to ``profiles.toml`` breaks every lookup, so the message must say where.
    """
    path = Path(path)
    return parse_profiles(path.read_bytes().decode(), str(path))


def parse_profiles(text: str, where: str) -> dict[str, TargetProfile]:
    """Every profile of ``text`` in the ``profiles.toml`` schema; errors are ValueErrors that start
    with ``where`` (the file) and the profile's name."""
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from None
    profiles = {}
    for name in tables:
        try:
            profiles[name] = _profile(name, tables)
        except ValueError as exc:
            raise ValueError(f"{where}: profile {name!r}: {exc}") from None
    return profiles


def _profile(name: str, tables: dict[str, Any]) -> TargetProfile:
    """Profile ``name`` of the file's ``tables``, its base applied, every key and value checked."""
    _keys("profile", tables[name], PROFILE_KEYS)
    table = _resolve(name, tables)
    _keys("profile", table, PROFILE_KEYS, ("description", "source", "numerics"))
    ops = _keys("ops", table.get("ops", {}), OPS_KEYS)
    for key in ("description", "source"):
        if not isinstance(table[key], str):
            raise ValueError(f"{key} must be a string; got {table[key]!r}")
    return TargetProfile(
        name=name,
        description=table["description"],
        numerics=Numerics(**_keys("numerics", table["numerics"], NUMERICS_KEYS, ("format",))),
        ops=OpSemantics(interpolate=_interpolate(ops["interpolate"]) if "interpolate" in ops else None),
        source=table["source"],
        caveats=_strings("caveats", table.get("caveats", [])),
        status=_status(name, table.get("status", {})),
    )


def _status(name: str, table: dict[str, str]) -> dict[str, str]:
    """A profile's status table, checked: every field, each "<kind>: <reason>"."""
    missing = [f for f in STATUS_FIELDS if f not in table]
    unknown = [f for f in table if f not in STATUS_FIELDS]
    if missing or unknown:
        raise ValueError(f"profile {name!r} status: missing {missing}, unknown {unknown}; valid: {list(STATUS_FIELDS)}")
    for key, text in table.items():
        kind, _, reason = str(text).partition(":")
        if kind not in STATUS_KINDS or not reason.strip():
            raise ValueError(f"profile {name!r} status.{key} = {text!r}: must read '<kind>: <reason>', "
                             f"kind one of {list(STATUS_KINDS)}")
    return dict(table)


def profile_names() -> list[str]:
    """The names of the profiles defined in ``profiles.toml``."""
    return list(_load())


def get_profile(name: str) -> TargetProfile:
    """The profile called ``name``. Raises ValueError listing the valid names."""
    profiles = _load()
    if name not in profiles:
        raise ValueError(f"unknown target profile {name!r}; valid: {list(profiles)}")
    return profiles[name]


def _round_bits(x: np.ndarray, bits: int, rounding: str) -> np.ndarray:
    """Round float32 ``x`` to ``bits`` significant bits on its bit pattern (exponent unbounded above).

    Working on the magnitude bits makes ties symmetric about zero; a carry out of the mantissa
    moves into the exponent, so rounding past the largest float32 gives inf as it should.
    """
    drop = 24 - bits
    if drop <= 0:
        return x.copy()
    u = x.view(np.uint32).astype(np.uint64)  # 64 bits: a carry out of a NaN pattern cannot wrap
    half = np.uint64(1 << (drop - 1))
    if rounding == "nearest_even":
        increment = half - np.uint64(1) + ((u >> np.uint64(drop)) & np.uint64(1))
    else:
        increment = half
    mask = np.uint64(0xFFFFFFFF & ~((1 << drop) - 1))
    return ((u + increment) & mask).astype(np.uint32).view(np.float32)


def _round_step(x: np.ndarray, step: float, rounding: str) -> np.ndarray:
    """Round ``x`` to a multiple of ``step`` (a power of two); exact in float64."""
    with np.errstate(invalid="ignore"):  # NaN is put back by the caller
        q = x.astype(np.float64) / step
    q = np.rint(q) if rounding == "nearest_even" else np.copysign(np.floor(np.abs(q) + 0.5), q)
    return (q * step).astype(np.float32)


def project(x: np.ndarray, numerics: Numerics, *, rounding: str | None = None) -> np.ndarray:
    """Replace every value by the value the format stores for it: the numpy reference of the format.

    float32 in, float32 out. ``rounding`` overrides ``numerics.rounding`` (see :func:`convert`).
    NaN and inf pass unchanged in every profile; a finite value never becomes NaN.
    """
    x = np.asarray(x, dtype=np.float32)
    if numerics.is_identity:
        return x.copy()
    mode = rounding or numerics.rounding
    _check("rounding", mode, ROUNDINGS)
    spec = numerics.spec
    r = _round_bits(x, spec.bits, mode)
    r_abs = np.abs(r)
    signed_zero = np.copysign(np.float32(0), x)
    if numerics.subnormals == "keep":
        r = np.where(np.abs(x) < spec.min_normal, _round_step(x, spec.step, mode), r)
    elif numerics.subnormals == "flush":
        r = np.where(r_abs < spec.min_normal, signed_zero, r)
    elif numerics.subnormals == "daz":  # judged on the value before rounding: read as zero
        r = np.where(np.abs(x) < spec.min_normal, signed_zero, r)
    else:  # "myriad": f32tof16 compares the rounded magnitude with 2^-15 and 2^-14
        tiny = np.copysign(np.float32(spec.min_normal), x)
        r = np.where(r_abs < spec.min_normal / 2, signed_zero, np.where(r_abs < spec.min_normal, tiny, r))
    overflowed = np.isfinite(x) & (np.abs(r) > spec.max_finite)
    limit = spec.max_finite if numerics.overflow == "saturate" else np.inf
    r = np.where(overflowed, np.copysign(np.float32(limit), x), r)
    return np.where(np.isnan(x), x, r).astype(np.float32)


def convert(x: np.ndarray, numerics: Numerics) -> np.ndarray:
    """Host-side conversion of f32 values (the input tile, f32 weights): :func:`project` with
    ``numerics.conversion_rounding``."""
    return project(x, numerics, rounding=numerics.conversion_rounding)


def representable(x: np.ndarray, numerics: Numerics) -> np.ndarray:
    """True where ``x`` is exactly a value the format can hold (NaN counts as representable)."""
    x = np.asarray(x, dtype=np.float32)
    return (project(x, numerics) == x) | np.isnan(x)


def status_table() -> str:
    """Every field of every profile with its value, status and source, as a Markdown table
    (docs/devices.md holds this output: ``python -m runtime.profiles``)."""
    lines = ["| profile | field | value | status and source |", "|---|---|---|---|"]
    for name in profile_names():
        profile = get_profile(name)
        for key in STATUS_FIELDS:
            if key == "interpolate":
                i = profile.ops.interpolate
                remap_nearest = "unknown" if i is None or i.remap_nearest is None else "/".join(i.remap_nearest)
                value = ("as written" if i is None else
                         f"every coordinate mode as written; modes {list(i.supported_modes)} only" if i.honour_all else
                         f"native nearest {[list(x) for x in i.native_nearest]}, native linear {list(i.native_linear)}; "
                         f"others -> {remap_nearest}, {i.remap_linear or 'unknown'}")
            else:
                value = getattr(profile.numerics, key)
            lines.append(f"| `{name}` | {key} | {value} | {profile.status[key]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(status_table(), end="")
