"""A CUDA device the host lacks is refused where any training resolves its device (search.train.torch_device),
not only by the search's up-front check: the baseline and the ablation failed deep inside torch on it."""

from __future__ import annotations

import pytest
import torch

from search.train import torch_device


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a CUDA device")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_a_cuda_device_this_host_lacks_is_refused_listing_the_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match=rf"torch device '{name}': this host has no such CUDA device; "
                                         r"valid here: \['auto', 'cpu'\]"):
        torch_device(name)


def test_the_cpu_and_auto_resolve() -> None:
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
