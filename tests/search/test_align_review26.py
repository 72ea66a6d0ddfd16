"""Review 26: the rewritten FP16 flush rules of search.align (F.threshold_ + clamp_min_ + minimum(out=)).

The values were found bit-identical to runtime.profiles.project on every input tried (random bit
patterns, NaN payloads, thresholds +-1 ulp, 65504/65520, float32 subnormals, every Numerics that takes
the fast path, every kind of peak_abs); these tests keep the cases that matter, and the one defect:
``project`` raised on a tensor that requires grad under the flush rules only.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from runtime.profiles import Numerics
from runtime.profiles import project as reference
from search.align import peak, project, project_ste

FLUSH_RULES = ["flush", "daz", "myriad"]


def _crafted() -> np.ndarray:
    """Each threshold of the flush rules and the overflow boundary, +-3 ulp, both signs, and NaN payloads."""
    points = [0.0, 2.0**-14, 2.0**-15, 2.0**-15 * (1 - 2.0**-12), 2.0**-14 * (1 - 2.0**-12), 2.0**-24, 2.0**-126,
              2.0**-149, 65504.0, 65520.0, 3.4028235e38, 3.4028235e38 / 4, np.inf]
    values = []
    for p in np.array(points, np.float32):
        for direction in (np.float32(0), np.float32(np.inf)):
            v = p
            for _ in range(4):
                values += [v, -v]
                v = np.nextafter(v, direction)
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF812345, 0x7FFFFFFF], np.uint32).view(np.float32)
    return np.concatenate([np.array(values, np.float32), nans])


@pytest.mark.parametrize("subnormals", FLUSH_RULES)
@pytest.mark.parametrize("overflow", ["saturate", "inf"])
def test_flush_rules_equal_the_reference_bit_for_bit(subnormals: str, overflow: str) -> None:
    """Regression (passes on the code under review): crafted and random bit patterns, every peak_abs."""
    numerics = Numerics("fp16", overflow=overflow, subnormals=subnormals)
    rng = np.random.default_rng(26)
    random_bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    for x in (_crafted(), random_bits):
        want = reference(x, numerics).view(np.uint32)
        t = torch.from_numpy(x.copy())
        for peak_abs in (None, peak(t), math.inf, math.nan):
            got = project(t, numerics, peak_abs=peak_abs).numpy().view(np.uint32)
            assert np.array_equal(got, want), (peak_abs, x[got != want][:5])
        assert np.array_equal(t.numpy().view(np.uint32), x.view(np.uint32)), "project changed its input"


@pytest.mark.parametrize("subnormals", FLUSH_RULES)
def test_layouts_and_views_equal_the_reference_and_leave_the_input_alone(subnormals: str) -> None:
    """Regression (passes on the code under review): channels_last, slices, expanded and empty tensors."""
    numerics = Numerics("fp16", overflow="saturate", subnormals=subnormals)
    values = torch.from_numpy(_crafted())
    dense = values[torch.randint(0, len(values), (2, 6, 5, 7), generator=torch.Generator().manual_seed(1))]
    for x in (dense.to(memory_format=torch.channels_last), dense[:, ::2, 1:, ::3], dense.transpose(1, 3),
              values[3:4].expand(4, 5), dense[:, :0], torch.tensor(3e-5), dense.flip(0)):
        before = x.clone()
        got = project(x, numerics).contiguous().numpy().view(np.uint32)
        assert np.array_equal(got, reference(x.numpy(), numerics).view(np.uint32))
        assert torch.equal(x.contiguous().view(torch.int32), before.contiguous().view(torch.int32))


@pytest.mark.parametrize("subnormals", ["keep", *FLUSH_RULES])
def test_project_takes_a_tensor_that_requires_grad(subnormals: str) -> None:
    """Defect: under a flush rule, project() on a tensor that requires grad (grad mode on) raised
    "minimum(): functions with out=... arguments don't support automatic differentiation", while
    the same call under "keep", with nearest_away or for bf16 returned the projected values."""
    numerics = Numerics("fp16", overflow="saturate", subnormals=subnormals)
    x = torch.tensor([2.0**-15, -3e-5, 1e-6, 1.0, -7e4, 0.0], requires_grad=True)
    got = project(x, numerics).detach().numpy().view(np.uint32)
    assert np.array_equal(got, reference(x.detach().numpy(), numerics).view(np.uint32))
    assert x.grad is None
    # the straight-through path is unchanged: the gradient passes inside the range, not past it
    project_ste(x, numerics).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
