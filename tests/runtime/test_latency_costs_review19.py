"""Review 19 of the Myriad X cost model's overrides (runtime/latency.py ``check_costs``): values of the
wrong type that were accepted silently (``hw_dilation = "false"``, an ``[ops]`` list given as one
string) or crashed with a bare TypeError (``ram_blocks`` not a list) are refused with a ValueError
naming the key."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime.latency import estimate_latency, load_costs
from runtime.ov_api import Model, opset


def _dilated_conv() -> Model:
    """One 3x3 convolution with dilation 2: the SHAVEs run it unless [nce] hw_dilation is true."""
    o8 = opset(8)
    x = o8.parameter([1, 16, 32, 32], np.float16, name="x")
    w = o8.constant(np.zeros([16, 16, 3, 3], np.float16))
    return Model([o8.result(o8.convolution(x, w, [1, 1], [2, 2], [2, 2], [2, 2]))], [x], "dilated")


@pytest.mark.parametrize("override, key", [
    ({"nce": {"hw_dilation": "false"}}, "[nce] hw_dilation"),
    ({"nce": {"hw_dilation": 0}}, "[nce] hw_dilation"),
    ({"nce": {"ram_blocks": 4}}, "[nce] ram_blocks"),
    ({"nce": {"mode_cost_cycles": 0}}, "[nce] mode_cost_cycles"),
    ({"ops": {"free": "Relu"}}, "[ops] free"),
    ({"ops": {"eltwise": ["Add", 3]}}, "[ops] eltwise"),
])
def test_load_costs_refuses_values_of_the_wrong_type(override: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_costs(override)


def test_string_false_does_not_move_a_dilated_convolution_onto_the_nce() -> None:
    """The string "false" was truthy: the dilated convolution was priced on the NCE, about 3x cheaper."""
    model = _dilated_conv()
    assert [la.unit for la in estimate_latency(model).layers if la.type == "Convolution"] == ["shave"]
    with pytest.raises(ValueError, match="hw_dilation must be true or false"):
        estimate_latency(model, {"nce": {"hw_dilation": "false"}})
    on_nce = estimate_latency(model, {"nce": {"hw_dilation": True}})
    assert [la.unit for la in on_nce.layers if la.type == "Convolution"] == ["nce"]


def _max_pool(strides: list[int]) -> Model:
    o8 = opset(8)
    x = o8.parameter([1, 16, 64, 64], np.float16, name="x")
    pool = o8.max_pool(x, strides, [1, 1], [0, 0], [0, 0], [2, 2])
    return Model([o8.result(pool.output(0))], [x], "pool")


def test_pooling_with_unequal_strides_runs_on_the_shaves() -> None:
    """The plugin's pooling parser refuses the hardware for unequal X/Y strides (as for convolutions);
    the cost model priced such a pooling on the NCE."""
    equal = [la for la in estimate_latency(_max_pool([2, 2])).layers if la.type == "MaxPool"]
    unequal = [la for la in estimate_latency(_max_pool([1, 2])).layers if la.type == "MaxPool"]
    assert [la.unit for la in equal] == ["nce"]
    assert [la.unit for la in unequal] == ["shave"]
    assert "unequal strides [1, 2]" in unequal[0].note
