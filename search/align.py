"""Deployment alignment: the forward pass run the way the target runs it, from the twin's own profile.

The target profile (:func:`runtime.profiles.get_profile`) is the single definition of how a target
computes. The twin (:mod:`runtime.emulate`) rewrites an IR with it; this module applies the *same
profile object* to a torch forward pass so that deployment-aligned fine-tuning sees what the device
will compute:

* :func:`project` is the torch twin of :func:`runtime.profiles.project`: every float32 value replaced
  by the value the profile's format stores for it, bit for bit the numpy reference (rounding on the
  float32 bit pattern, saturation, the Myriad flush rule, inf/NaN passing). Tests compare the two on
  random tensors, values past 65504 and below 2^-14 included.
* :class:`Aligner` projects a layer's weights as the IR stores them (BatchNorm folded into the
  convolution, FP16, the host conversion's rounding), every op result the device stores, and the
  input tile as the host converts it; and it answers which Interpolate the target actually runs
  (``profile.ops.interpolate``), so that a half_pixel bilinear upsampling is trained as the
  asymmetric one the Myriad X silently runs instead.

The gradient: straight through inside the format's range, zero where the value saturated. A naive
straight-through pass through saturation collapsed a model in a probe (``shared/reference/
myriadx.md``): it tells every saturated unit to keep growing, although the device output no longer
moves. With the clipped gradient (the derivative of a clamp) a saturated unit receives no push
outwards, and the rest of the network learns around it; :meth:`Aligner.range_penalty` measures how
far activations went past the range so the loss can pull them back.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from runtime.profiles import ROUNDINGS, Numerics, TargetProfile, get_profile

_SIGN = -(2**31)  # 0x80000000 as an int32
_MAG = 0x7FFFFFFF
_FP16_CAST_TO_INF = 65520.0  # the smallest float32 magnitude the float->half cast sends to inf
#: How search.export_ir stores a float weight in the IR (ov.save_model(compress_to_fp16=True)):
#: IEEE FP16 rounded to nearest even, subnormals kept, magnitudes past 65504 clamped to it (checked
#: on OpenVINO 2026.4). The twin and the device start from these values, whatever their own format.
IR_WEIGHTS = Numerics("fp16", rounding="nearest_even", overflow="saturate", subnormals="keep")


def peak(x: torch.Tensor) -> float:
    """The largest ``|x|`` in one read of ``x`` (NaN if ``x`` holds a NaN; 0 for an empty tensor).

    A fine-tuning step asks this once per stored result: when the peak is inside the format's
    range, nothing saturates, so the saturation masks, the clipped gradient and the range penalty
    are known without computing them (each would be several more passes over the tensor).
    """
    if x.numel() == 0:
        return 0.0
    lo, hi = (v.item() for v in torch.aminmax(x.detach()))
    return math.nan if math.isnan(lo) or math.isnan(hi) else max(-lo, hi)


def _round_bits(x: torch.Tensor, bits: int, rounding: str) -> torch.Tensor:
    """Round float32 ``x`` to ``bits`` significant bits on its bit pattern (exponent unbounded above).

    The same arithmetic as :func:`runtime.profiles._round_bits`, on the magnitude in int32: ties are
    symmetric about zero and a carry out of the mantissa moves into the exponent (past the largest
    float32 it gives inf). A NaN pattern may wrap; the caller puts NaN back.
    """
    drop = 24 - bits
    if drop <= 0:
        return x.clone()
    u = x.contiguous().view(torch.int32)
    sign = u & _SIGN
    mag = u & _MAG
    half = 1 << (drop - 1)
    if rounding == "nearest_even":
        increment = (half - 1) + ((mag >> drop) & 1)
    else:
        increment = torch.full_like(mag, half)
    keep = ~((1 << drop) - 1)  # int32 mask of the bits that stay
    return (((mag + increment) & keep) | sign).view(torch.float32)


def _round_step(x: torch.Tensor, step: float, rounding: str) -> torch.Tensor:
    """Round ``x`` to a multiple of ``step`` (a power of two), exactly in float64."""
    q = x.double() / step
    q = torch.round(q) if rounding == "nearest_even" else torch.copysign(torch.floor(q.abs() + 0.5), q)
    return (q * step).float()


def project(x: torch.Tensor, numerics: Numerics, *, rounding: str | None = None,
            peak_abs: float | None = None) -> torch.Tensor:
    """Every value replaced by the value ``numerics``' format stores for it (no gradient).

    float32 in, float32 out, equal bit for bit to :func:`runtime.profiles.project` on the same data
    (``rounding`` overrides ``numerics.rounding``; host conversion uses ``conversion_rounding``).
    ``peak_abs``, when the caller knows it (:func:`peak`), lets the fast path skip the checks for
    overflow and NaN that the peak rules out; the result is the same.

    Raises:
        ValueError: for a rounding that is not one of :data:`runtime.profiles.ROUNDINGS`.
    """
    if x.dtype != torch.float32:
        raise ValueError(f"project takes float32 tensors (got {x.dtype}); valid: [torch.float32]")
    if numerics.is_identity:
        return x.clone()
    mode = rounding or numerics.rounding
    if mode not in ROUNDINGS:
        raise ValueError(f"rounding {mode!r} is not one of {list(ROUNDINGS)}")
    if numerics.format == "fp16" and mode == "nearest_even":
        return _project_fp16_cast(x, numerics, peak_abs)
    if numerics.format == "fp16" and mode == "nearest_away" and numerics.subnormals != "keep":
        return _project_fp16_away(x, numerics, peak_abs)
    return _project_bits(x, numerics, mode)


def _project_fp16_cast(x: torch.Tensor, numerics: Numerics, peak_abs: float | None = None) -> torch.Tensor:
    """:func:`project` for fp16 with nearest-even rounding (every activation of a fine-tuning step),
    through the hardware float->half cast: the same values, in a fraction of the time.

    The cast is IEEE binary16: nearest-even, gradual underflow, overflow to inf. Where the profile
    differs: finite values the cast sends to inf saturate instead (``overflow = "saturate"``; they
    are exactly the values the exact path calls overflowed), and values below the smallest normal,
    where the flush rules and the cast disagree, take the rule's closed form
    (:func:`_flush_then_cast`). NaN keeps its payload as in the reference.
    """
    spec = numerics.spec
    r = x.half().float() if numerics.subnormals == "keep" else _flush_then_cast(x, numerics)
    finite = peak_abs is not None and math.isfinite(peak_abs)
    if numerics.overflow == "saturate" and not (finite and peak_abs < _FP16_CAST_TO_INF):  # type: ignore[operator]
        r = torch.where(torch.isinf(r) & torch.isfinite(x), torch.copysign(torch.full_like(x, spec.max_finite), x), r)
    return r if finite else torch.where(torch.isnan(x), x, r)


#: float32 bits that fp16 drops (13 of the 23 mantissa bits), and their pattern at an exact tie.
_DROPPED_FP16 = (1 << 13) - 1
_TIE_FP16 = 1 << 12


def _project_fp16_away(x: torch.Tensor, numerics: Numerics, peak_abs: float | None = None) -> torch.Tensor:
    """:func:`project` for fp16 rounded half away from zero under a flush rule (the input tile's
    host conversion, ``conversion_rounding``): the nearest-even cast path, then the exact ties
    done again by the reference.

    The two roundings differ only at an exact tie, a float32 whose 13 dropped mantissa bits are
    ``1000000000000``: every other value rounds to its nearest fp16 either way. Below the smallest
    normal the flush rules' thresholds fall on the same side in both (the bound rounds up to a power
    of two, which is even), so ties decide nothing there, and a NaN with that pattern is recomputed
    to the same NaN. One integer test finds the ties; they are rare in real tiles, so the
    reference (:func:`_project_bits`) takes just those values. About half the reference's time over a
    batch of tiles (docs/search.md), with the same bits (tests/search/test_align.py).
    """
    r = _project_fp16_cast(x, numerics, peak_abs)
    at_tie = (x.view(torch.int32) & _DROPPED_FP16) == _TIE_FP16
    if at_tie.any():  # usually not: nonzero over the whole batch costs more than the test
        ties = at_tie.nonzero(as_tuple=True)
        r[ties] = _project_bits(x[ties], numerics, "nearest_away")
    return r


@functools.lru_cache(maxsize=None)
def _lift_threshold(min_normal: float, bits: int, subnormals: str) -> float:
    """The largest float32 below which a subnormal-range magnitude flushes to zero (exclusive).

    Below the smallest normal the rule is a threshold: the profile rounds to ``bits`` significant
    bits and then flushes a magnitude under ``base`` to zero and lifts the rest to the smallest
    normal. Rounding lands on ``base`` (a power of two: even, so ties go up) from every
    |x| >= base * (1 - 2^-(bits + 1)), hence one comparison on |x| decides. "daz" judges |x|
    itself: nothing below the smallest normal survives. Returned as the float32 just under that
    bound, because ``F.threshold`` keeps values strictly above its threshold.
    """
    base = {"myriad": min_normal / 2, "flush": min_normal}.get(subnormals, math.inf)
    bound = min(base * (1 - 2.0 ** -(bits + 1)), min_normal)
    return float(np.nextafter(np.float32(bound), np.float32(0)))


def _flush_then_cast(x: torch.Tensor, numerics: Numerics) -> torch.Tensor:
    """The fp16 cast of ``x`` under a flush rule (``subnormals`` other than "keep"), on |x|.

    |x| under the rule's threshold becomes 0 (``F.threshold``); what is kept is lifted to at least
    the smallest normal (a clamp), except that a zero must stay zero: the minimum with 4|x| does
    that, since 4 x threshold is past the smallest normal. Then the cast and the sign. Five
    elementwise passes and no ``torch.where`` or boolean tensor: on CPU a ``where`` or a product
    with a mask costs several times one of these passes, and this runs on every stored activation
    of an aligned step (the earlier form, two ``where``s, took about 2.5 times as long). A NaN
    becomes 0 here; the caller puts it back.

    On ``x.detach()``: :func:`project` has no gradient, and ``minimum(out=...)`` refuses a tensor
    that requires grad (the other rules take one).
    """
    spec = numerics.spec
    x = x.detach()  # a view: no copy; the in-place ops below write only to tensors made here
    magnitude = F.threshold_(x.abs(), _lift_threshold(spec.min_normal, spec.bits, numerics.subnormals), 0.0)
    zero_stays_zero = magnitude * 4.0
    torch.minimum(magnitude.clamp_min_(spec.min_normal), zero_stays_zero, out=zero_stays_zero)
    return zero_stays_zero.half().float().copysign_(x)


def _project_bits(x: torch.Tensor, numerics: Numerics, mode: str) -> torch.Tensor:
    """:func:`project` on the float32 bit pattern: any format, either rounding (the reference path)."""
    spec = numerics.spec
    r = _round_bits(x, spec.bits, mode)
    r_abs = r.abs()
    signed_zero = torch.copysign(torch.zeros_like(x), x)
    if numerics.subnormals == "keep":
        r = torch.where(x.abs() < spec.min_normal, _round_step(x, spec.step, mode), r)
    elif numerics.subnormals == "flush":
        r = torch.where(r_abs < spec.min_normal, signed_zero, r)
    elif numerics.subnormals == "daz":
        r = torch.where(x.abs() < spec.min_normal, signed_zero, r)
    else:  # "myriad": thresholds on the rounded magnitude, as f32tof16
        tiny = torch.copysign(torch.full_like(x, spec.min_normal), x)
        r = torch.where(r_abs < spec.min_normal / 2, signed_zero, torch.where(r_abs < spec.min_normal, tiny, r))
    overflowed = torch.isfinite(x) & (r.abs() > spec.max_finite)
    limit = spec.max_finite if numerics.overflow == "saturate" else float("inf")
    r = torch.where(overflowed, torch.copysign(torch.full_like(x, limit), x), r)
    return torch.where(torch.isnan(x), x, r)


class _ProjectSTE(torch.autograd.Function):
    """Projection forward; backward straight through inside the range, zero where it saturated."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, numerics: Numerics, rounding: str | None,  # type: ignore[override]
                peak_abs: float | None) -> torch.Tensor:
        # Nothing saturated when the peak is inside the range: the gradient passes unchanged, and
        # no mask is computed or kept.
        ctx.all_inside = peak_abs is not None and peak_abs <= numerics.spec.max_finite
        if not ctx.all_inside:
            ctx.save_for_backward(x.abs() <= numerics.spec.max_finite)
        return project(x, numerics, rounding=rounding, peak_abs=peak_abs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # type: ignore[override]
        if ctx.all_inside:
            return grad, None, None, None
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def project_ste(x: torch.Tensor, numerics: Numerics, rounding: str | None = None,
                peak_abs: float | None = None) -> torch.Tensor:
    """:func:`project` with the clipped straight-through gradient (see the module docstring).

    ``peak_abs``: ``x``'s :func:`peak`, if the caller has it (it saves passes; same result).
    """
    if numerics.is_identity:
        return x
    return _ProjectSTE.apply(x, numerics, rounding, peak_abs)


@dataclass
class Aligner:
    """The target's way of computing, applied to a torch forward pass.

    ``profile`` is the very object the twin uses (``get_profile(name)`` is cached). The network's
    layers call :meth:`act` on every result the device stores, :meth:`weight` on every weight as
    the IR stores it, :meth:`input` on the tile, and :meth:`interpolate_mode` for the coordinate mode
    the target runs. ``overflow`` accumulates the range penalty of the current forward pass.
    """

    profile: TargetProfile
    overflow: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def for_profile(cls, name: str) -> Aligner:
        """The aligner of the profile called ``name`` (ValueError lists the valid names)."""
        return cls(get_profile(name))

    @property
    def numerics(self) -> Numerics:
        return self.profile.numerics

    def act(self, x: torch.Tensor) -> torch.Tensor:
        """A result the device computes and stores (rounded with ``numerics.rounding``)."""
        if self.numerics.is_identity:
            return x
        top = peak(x)
        limit = self.numerics.spec.max_finite
        # Only a tensor that went past the range adds to the penalty (the others add exactly 0).
        if torch.is_grad_enabled() and not top <= limit:
            self.overflow.append(torch.relu(x.abs() / limit - 1.0).square().mean())
        return project_ste(x, self.numerics, peak_abs=top)

    def conv2d(self, x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int = 0,
               groups: int = 1) -> torch.Tensor:
        """A convolution's stored result, summed as the target sums it: with ``accumulate = "fp16"``
        over input channels in chunks of ``accumulate_chunk``, each chunk's sum and each running
        partial sum rounded (the twin's rewrite, runtime.emulate._split_accumulations, in its order);
        a grouped (depthwise) convolution, which the twin leaves whole, in one sum like any other."""
        numerics = self.numerics
        cin, chunk = x.shape[1], numerics.accumulate_chunk
        if numerics.accumulate != "fp16" or groups != 1 or cin <= chunk:
            return self.act(F.conv2d(x, w, None, stride, padding, 1, groups))
        total = None
        for start in range(0, cin, chunk):
            part = self.act(F.conv2d(x[:, start:start + chunk], w[:, start:start + chunk], None, stride, padding))
            total = part if total is None else self.act(total + part)
        assert total is not None
        return total

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """The f32 tile converted on the host (``numerics.conversion_rounding``)."""
        if not self.numerics.convert_input:
            return x
        return project_ste(x, self.numerics, self.numerics.conversion_rounding, peak(x))

    def weight(self, w: torch.Tensor) -> torch.Tensor:
        """A weight as the device holds it: the exporter writes FP16 (:data:`IR_WEIGHTS`), and the
        twin then applies the profile's conversion (rounding, flush and saturation) to the stored
        constant. The first step is FP16 whatever the profile's format: a bf16 target reads the
        FP16 IR's weights, so its weight is bf16(fp16(w)), which is not bf16(w) (double rounding)."""
        if self.numerics.is_identity:  # as before: the fp32 profile (ablation's post-training branch) keeps f32
            return w
        return project_ste(project_ste(w, IR_WEIGHTS), self.numerics, self.numerics.conversion_rounding)

    def interpolate_mode(self, mode: str, coordinate_mode: str, nearest_mode: str = "round_prefer_floor") -> str:
        """The coordinate mode the target runs for an Interpolate written with ``coordinate_mode``."""
        semantics = self.profile.ops.interpolate
        if semantics is None:
            return coordinate_mode
        target = semantics.target(mode, coordinate_mode, nearest_mode)
        return coordinate_mode if target is None else target[0]

    def range_penalty(self) -> torch.Tensor:
        """Mean squared excess of |activation| over the format's largest value, since the last call."""
        total = torch.stack(self.overflow).sum() if self.overflow else torch.zeros(())
        self.overflow = []
        return total
