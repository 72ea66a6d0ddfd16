"""When the Myriad X's neural compute engine (NCE) cannot run a convolution as written.

One owner for these rules: :mod:`runtime.check` reports each as a finding with its source, and the
cost model (:mod:`runtime.latency`) prices a convolution they catch on the SHAVE cores instead.
The limits (``max_stride``, ``max_kernel``, ``hw_dilation``) are the ``[nce]`` table of
myriadx_costs.toml, with their sources there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def not_4d(rank: int) -> str | None:
    return f"{rank}D tensors (the NCE takes 4D)" if rank != 4 else None


def dilated(dilations: Sequence[int], limits: dict[str, Any]) -> str | None:
    if any(d != 1 for d in dilations) and not limits["hw_dilation"]:
        return f"dilation {list(dilations)}"
    return None


def outside_limits(strides: Sequence[int], kernel: Sequence[int], limits: dict[str, Any]) -> list[str]:
    problems = []
    if len(set(strides)) > 1:
        problems.append(f"unequal strides {list(strides)}")
    if strides and max(strides) > limits["max_stride"]:
        problems.append(f"stride {max(strides)} > {limits['max_stride']}")
    if kernel and max(kernel) > limits["max_kernel"]:
        problems.append(f"kernel {list(kernel)} > {limits['max_kernel']}")
    return problems


def software_reasons(rank: int, strides: Sequence[int], dilations: Sequence[int], kernel: Sequence[int],
                     limits: dict[str, Any]) -> list[str]:
    """Why the MYRIAD plugin would run this convolution on the SHAVEs instead of the NCE (empty: it
    would not)."""
    return [r for r in (not_4d(rank), dilated(dilations, limits)) if r] + outside_limits(strides, kernel, limits)
