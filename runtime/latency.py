"""An ESTIMATE of how long an OpenVINO IR takes on the Intel Movidius Myriad X, layer by layer.

Why: the project has no Myriad X stick on most machines, yet the search must rank candidates by
what they would cost on board, and the twin (``myriadx-emu``) must report a device latency beside the
host one. This module walks an ``ov.Model`` and prices every layer the way the MYRIAD plugin runs it:

* convolutions, fully connected layers and pooling on the Neural Compute Engine (NCE), using the
  plugin's own descriptor cost model (``hw/tiling.cpp``): 256 MACs per cycle spread over RAM blocks,
  output channels padded to 8, a per-mode cost, input channels split into partial sums when the
  coefficients do not fit; so thin layers are slow for the same reason they are on the chip;
* depthwise convolutions as the plugin rewrites them: dense convolutions with block-diagonal weights
  over tiles of channels (``split_hw_depth_convolution.cpp``), i.e. mostly redundant MACs;
* software fallbacks on the SHAVE cores: dilated convolutions, convolutions outside the hardware
  limits, deconvolutions, element-wise and data-movement kernels (Sigmoid, Swish, Interpolate, ...);
* memory: a layer's tensors live in CMX when they fit, in DDR otherwise; weights come from DDR;
* a fixed cost per hardware tile (at least one per NCE layer: the per-layer overhead) and per stage;
* the model input and output crossing USB 3 (or USB 2);
* an op type the table does not list: as a SHAVE data kernel, by its bytes alone (its arithmetic is
  unknown here), and named in the estimate's ``unpriced_ops`` so that no caller mistakes the total
  for a complete price.

Each layer costs ``max(compute, memory) + overheads``. The constants live in
``runtime/myriadx_costs.toml``, each with its source; the few that no document gives were fitted to
published latencies of reference networks (least squares on log latency; see below).
Everything this module returns is labelled an estimate; it is never a measurement.

Calibration: :mod:`runtime.latency_calibration` (a design-time tool the runtime never imports)
builds the reference networks, compares their estimates with published figures, fits the
constants and checks them leaving each reference out, and writes ``runtime/myriadx_calibration.json``
(``python -m runtime.latency_calibration``). That file is the one record of the figures:
``tests/runtime/test_latency.py`` and ``docs/devices.md`` read it.

Length: one cost model. The graph walk and the pricing rule for each op family share the fusion
state (what a convolution absorbs), so they stay together. The NCE's rules live in runtime/nce.py
and the calibration tool in runtime/latency_calibration.py.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from runtime import nce
from runtime.config import check_number, load_defaults, merge_into
from runtime.ov_api import Model

COSTS_PATH = Path(__file__).with_name("myriadx_costs.toml")
UNITS = ("nce", "shave", "transfer")
FP16_BYTES = 2  # every activation and weight on the VPU is FP16, whatever element type the IR names
FLOAT_TYPES = ("f16", "f32", "bf16", "f64")


# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------


def load_costs(override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cost constants from ``myriadx_costs.toml`` with ``override`` merged over them.

    Raises:
        ValueError: if ``override`` names a key the TOML does not have (a typo would otherwise be
            silently ignored and the estimate would not be what the caller asked for).
    """
    costs = load_defaults(COSTS_PATH)
    if override:
        merge_into(costs, override, "costs")
    check_costs(costs)
    return costs


#: Rates (per second): a divisor of every layer's time, so each must be a finite number > 0.
RATE_KEYS = (("nce", "cycles_per_s"), ("memory", "cmx_bytes_per_s"), ("memory", "ddr_bytes_per_s"),
             ("shave", "macs_per_s"), ("shave", "bytes_per_s"))
#: Fixed times (seconds) added per layer, tile or transfer: finite and >= 0.
TIME_KEYS = (("nce", "tile_overhead_s"), ("overhead", "layer_s"), ("transfer", "latency_s"))
#: NCE geometry and limits: positive integers (they divide, pad and bound channel counts).
NCE_INTEGER_KEYS = ("macs_per_cycle", "output_channel_align", "max_coeff_per_block", "max_channels",
                    "max_stride", "max_kernel", "tile_bytes")


def check_costs(costs: dict[str, Any]) -> None:
    """Refuse constants that would make an estimate negative, infinite or meaningless.

    Why: an override such as ``{"nce": {"cycles_per_s": 0}}`` or a negative transfer latency was
    accepted and priced every model at ``inf`` or below zero. Rates must be > 0, fixed times >= 0,
    the NCE geometry positive integers (``ram_blocks`` and ``mode_cost_cycles`` lists, the latter of
    integers >= 0, one per RAM block), the CMX budget an integer >= 0, ``hw_dilation`` a bool (the
    string ``"false"`` is truthy and moved every dilated convolution onto the NCE) and each ``[ops]``
    entry a list of op type names (a bare string was read letter by letter).

    Raises:
        ValueError: naming the first key out of range and what it must be.
    """
    for table, key in RATE_KEYS:
        check_number(f"costs [{table}] {key}", costs[table][key], 0.0, strict=True)
    for link, rate in costs["transfer"]["bytes_per_s"].items():
        check_number(f"costs [transfer.bytes_per_s] {link}", rate, 0.0, strict=True)
    for table, key in TIME_KEYS:
        check_number(f"costs [{table}] {key}", costs[table][key], 0.0)
    nce_table = costs["nce"]
    for key in NCE_INTEGER_KEYS:
        check_number(f"costs [nce] {key}", nce_table[key], 1, integer=True)
    check_number("costs [memory] activation_cmx_budget_bytes", costs["memory"]["activation_cmx_budget_bytes"],
                 0, integer=True)
    if not isinstance(nce_table["hw_dilation"], bool):  # "false" would be truthy: dilations on the NCE
        raise ValueError(f"costs [nce] hw_dilation must be true or false; got {nce_table['hw_dilation']!r}")
    for key in ("ram_blocks", "mode_cost_cycles"):  # an int here was a TypeError from list()
        if not isinstance(nce_table[key], (list, tuple)):
            raise ValueError(f"costs [nce] {key} must be a list of integers (one per mode); got {nce_table[key]!r}")
    blocks, mode_costs = list(nce_table["ram_blocks"]), list(nce_table["mode_cost_cycles"])
    if not blocks or len(blocks) != len(mode_costs):
        raise ValueError(f"costs [nce] ram_blocks and mode_cost_cycles must be non-empty lists of the same "
                         f"length (one cost per mode); got {blocks} and {mode_costs}")
    for i, (b, m) in enumerate(zip(blocks, mode_costs)):
        check_number(f"costs [nce] ram_blocks[{i}]", b, 1, integer=True)
        check_number(f"costs [nce] mode_cost_cycles[{i}]", m, 0, integer=True)
    for category, names in costs["ops"].items():  # a bare string was iterated letter by letter
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"costs [ops] {category} must be a list of op type names; got {names!r}")


class NceSpec(NamedTuple):
    """The NCE constants the descriptor cost model needs, hashable so the cost can be cached."""

    macs_per_cycle: int
    ram_blocks: tuple[int, ...]
    mode_cost_cycles: tuple[int, ...]
    output_channel_align: int
    max_coeff_per_block: int
    max_channels: int

    @classmethod
    def from_costs(cls, costs: dict[str, Any]) -> NceSpec:
        n = costs["nce"]
        return cls(int(n["macs_per_cycle"]), tuple(n["ram_blocks"]), tuple(n["mode_cost_cycles"]),
                   int(n["output_channel_align"]), int(n["max_coeff_per_block"]), int(n["max_channels"]))


# --------------------------------------------------------------------------------------------------
# NCE descriptor cost model (after the MYRIAD plugin's hw/tiling.cpp)
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _best_mode_cycles(cin: int, cout: int, kx: int, ky: int, spec: NceSpec) -> int | None:
    """Cycles per output pixel of the cheapest valid NCE mode, or None if no mode holds the kernel."""
    best = None
    for blocks, mode_cost in zip(spec.ram_blocks, spec.mode_cost_cycles):
        if blocks > cin and blocks > 1:
            continue
        ext_in = -(-cin // blocks) * blocks
        ext_out = -(-cout // spec.output_channel_align) * spec.output_channel_align
        per_descr = min(spec.macs_per_cycle // blocks, ext_out)
        in_per_block = ext_in // blocks
        if in_per_block * kx * ky > spec.max_coeff_per_block:
            continue
        cycles = -(-cout // per_descr) * (in_per_block * kx * ky + mode_cost)
        if best is None or cycles < best:
            best = cycles
    return best


@functools.lru_cache(maxsize=65536)
def nce_conv_cycles(cin: int, cout: int, kx: int, ky: int, spec: NceSpec) -> int:
    """NCE cycles per output pixel of a dense convolution, splitting input channels if needed.

    When no mode holds ``cin * kx * ky`` coefficients per RAM block (or ``cin`` exceeds the channel
    limit), the plugin splits the input channels into tiles whose partial sums are accumulated; each
    tile costs a full pass.
    """
    for n_split in range(1, cin + 1):
        cin_tile = -(-cin // n_split)
        if cin_tile > spec.max_channels:
            continue
        cycles = _best_mode_cycles(cin_tile, cout, kx, ky, spec)
        if cycles is not None:
            return n_split * cycles
    raise ValueError(f"kernel {kx}x{ky} does not fit the NCE even with one input channel per tile")


@functools.lru_cache(maxsize=4096)
def nce_depthwise_cycles(channels: int, kx: int, ky: int, spec: NceSpec) -> tuple[int, int]:
    """(cycles per output pixel, channel tiles) of a depthwise convolution on the NCE.

    The plugin runs it as ``ceil(C / t)`` dense t->t convolutions with block-diagonal weights and
    picks the tile size t of least descriptor cost; all but one of every t MACs multiply a zero.
    """
    best: tuple[int, int] | None = None
    for tile in range(1, channels):
        cycles = _best_mode_cycles(tile, tile, kx, ky, spec)
        if cycles is None:
            continue
        n_tiles = -(-channels // tile)
        if best is None or cycles * n_tiles < best[0]:
            best = (cycles * n_tiles, n_tiles)
    if best is None:  # the plugin falls back to one tile of all channels
        best = (nce_conv_cycles(channels, channels, kx, ky, spec), 1)
    return best


# --------------------------------------------------------------------------------------------------
# What each layer does (independent of the calibrated rates)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """The device work of one layer: counts only, so that pricing can be refitted cheaply."""

    name: str
    type: str
    unit: str  # "nce" | "shave" | "transfer"
    macs: int = 0  # useful multiply-accumulates (what the IR asks for)
    bytes: int = 0  # activation + weight bytes read and written (FP16), or bytes over the link
    nce_cycles: float = 0.0
    cmx_bytes: int = 0  # NCE traffic served from CMX
    ddr_bytes: int = 0  # NCE traffic served from DDR (large tensors, weights)
    stages: int = 1  # hardware tiles the layer runs as
    shave_macs: int = 0
    shave_bytes: int = 0
    transfer_bytes: int = 0
    link: str = ""
    note: str = ""
    unpriced: bool = False  # an op type the cost table does not know: priced by its bytes alone


_WORK_ARRAYS = ("nce_cycles", "cmx_bytes", "ddr_bytes", "stages", "shave_macs", "shave_bytes",
                "transfer_bytes")


class _Walker:
    """Walks one ``ov.Model`` in topological order and turns each op into :class:`Work`."""

    def __init__(self, costs: dict[str, Any], link: str):
        self.costs = costs
        self.link = link
        self.spec = NceSpec.from_costs(costs)
        ops = costs["ops"]
        self.category = _op_categories(ops)
        self.constant: set[str] = set()
        self.absorbs_bias: set[str] = set()  # outputs a bias/scale can fuse into (NCE convolutions)
        #: outputs a ReLU-like activation can fuse into -> their producer ("conv", "fc", "pool" on the
        #: NCE, "eltwise" on the SHAVEs): what merges depends on it (:meth:`_merges_post_op`)
        self.absorbs_act: dict[str, str] = {}

    def walk(self, model: Model) -> list[Work]:
        works = []
        for node in model.get_ordered_ops():
            work = self.visit(node)
            if work is not None:
                works.append(work)
        return works

    def visit(self, node: Any) -> Work | None:
        kind, key = node.get_type_name(), node.get_name()
        if kind == "Constant":
            self.constant.add(key)
            return None
        if kind in ("Parameter", "Result"):
            return self._transfer(node, kind)
        sources = [inp.get_source_output().get_node() for inp in node.inputs()]
        if sources and all(s.get_name() in self.constant for s in sources):
            self.constant.add(key)  # folded when the plugin compiles the graph
            return None
        if kind == "ShapeOf" and node.input(0).get_partial_shape().is_static:
            self.constant.add(key)
            return None
        _require_static(node)
        category = self.category.get(kind, "unknown")
        handler = getattr(self, f"_{category}")
        return handler(node, kind, sources)

    # -- helpers -----------------------------------------------------------------------------------

    def _activations_in(self, node: Any, sources: Sequence[Any]) -> int:
        return sum(_numel(_in_shape(node, i)) * _device_bytes(node.input(i).get_element_type())
                   for i, s in enumerate(sources) if s.get_name() not in self.constant)

    def _weights_in(self, node: Any, sources: Sequence[Any]) -> int:
        return sum(_numel(_in_shape(node, i)) for i, s in enumerate(sources)
                   if s.get_name() in self.constant) * FP16_BYTES

    def _out_bytes(self, node: Any) -> int:
        # outputs nobody reads (MaxPool-8 indices) are not written by the device kernel
        used = [i for i in range(node.get_output_size()) if i == 0 or node.output(i).get_target_inputs()]
        return sum(_numel(_out_shape(node, i)) * _device_bytes(node.get_output_element_type(i)) for i in used)

    def _shave(self, node: Any, kind: str, sources: Sequence[Any], macs: int = 0, note: str = "") -> Work:
        nbytes = self._activations_in(node, sources) + self._weights_in(node, sources) + self._out_bytes(node)
        return Work(node.get_friendly_name(), kind, "shave", macs=macs, bytes=nbytes,
                    shave_macs=macs, shave_bytes=nbytes, note=note)

    def _nce(self, node: Any, kind: str, sources: Sequence[Any], macs: int, cycles: float,
             min_stages: int = 1, note: str = "") -> Work:
        act = self._activations_in(node, sources) + self._out_bytes(node)
        weights = self._weights_in(node, sources)
        in_cmx = act <= self.costs["memory"]["activation_cmx_budget_bytes"]
        stages = max(min_stages, math.ceil(act / self.costs["nce"]["tile_bytes"]))
        return Work(node.get_friendly_name(), kind, "nce", macs=macs, bytes=act + weights, nce_cycles=cycles,
                    cmx_bytes=act if in_cmx else 0, ddr_bytes=weights + (0 if in_cmx else act),
                    stages=stages, note=note)

    def _single_consumer(self, node: Any) -> bool:
        return len(node.output(0).get_target_inputs()) == 1

    # -- categories --------------------------------------------------------------------------------

    def _transfer(self, node: Any, kind: str) -> Work:
        if kind == "Parameter":
            shape, etype = node.get_output_partial_shape(0), node.get_element_type()
        else:
            shape, etype = node.input(0).get_partial_shape(), node.input(0).get_element_type()
        if not shape.is_static:
            raise ValueError(f"{kind} {node.get_friendly_name()!r} has a dynamic shape {shape}; "
                             "the estimate needs static shapes (reshape the model first)")
        nbytes = _numel(shape.to_shape()) * _type_size(etype)
        direction = "input to device" if kind == "Parameter" else "output to host"
        return Work(node.get_friendly_name(), kind, "transfer", bytes=nbytes, transfer_bytes=nbytes,
                    link=self.link, note=f"{direction} over {self.link}")

    def _free(self, node: Any, kind: str, sources: Sequence[Any]) -> None:
        return None

    def _in_place_on_channel_axis(self, node: Any, kind: str, sources: Sequence[Any]) -> Work | None:
        rank = len(_out_shape(node, 0)) if kind == "Concat" else len(_in_shape(node, 0))
        shape = _out_shape(node, 0) if kind == "Concat" else _in_shape(node, 0)
        if kind == "Concat":
            axis = int(node.get_attributes()["axis"])
        elif sources[1].get_type_name() == "Constant":
            axis = int(np.asarray(sources[1].get_data()).reshape(-1)[0])
        else:
            return self._shave(node, kind, sources, note="copy: split axis not a plain constant")
        axis %= rank
        # in row-major layout a slab along `axis` is contiguous when every outer dimension is 1
        if _numel(shape[:axis]) == 1:
            return None
        return self._shave(node, kind, sources, note="copy: not a contiguous slab")

    def _convolution(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        x, w, y = _in_shape(node, 0), _in_shape(node, 1), _out_shape(node, 0)
        attrs = node.get_attributes()
        if kind == "GroupConvolution":  # [G, Cout/G, Cin/G, k...]
            groups, cout_g, cin_g, kernel = w[0], w[1], w[2], w[3:]
        else:  # [Cout, Cin, k...]
            groups, cout_g, cin_g, kernel = 1, w[0], w[1], w[2:]
        out_px = _numel(y) // (groups * cout_g) if len(y) else 0
        macs = out_px * groups * cout_g * cin_g * _numel(kernel)
        reasons = nce.software_reasons(len(x), list(attrs.get("strides", [1])), list(attrs.get("dilations", [1])),
                                       kernel, self.costs["nce"])
        if reasons:
            return self._shave(node, kind, sources, macs=macs, note="SHAVE software convolution: " + "; ".join(reasons))
        self.absorbs_bias.add(node.get_name())
        self.absorbs_act[node.get_name()] = "conv"
        ky, kx = kernel
        if groups == 1:
            return self._nce(node, kind, sources, macs, out_px * nce_conv_cycles(cin_g, cout_g, kx, ky, self.spec))
        if cin_g == 1 and cout_g == 1:
            cycles, tiles = nce_depthwise_cycles(groups, kx, ky, self.spec)
            useful = _best_mode_cycles(1, 1, kx, ky, self.spec) or 1
            return self._nce(node, kind, sources, macs, out_px * cycles, min_stages=tiles,
                             note=f"depthwise as {tiles} dense block-diagonal tile(s): "
                                  f"{cycles / useful:.0f}x the cycles of one channel")
        cycles = groups * nce_conv_cycles(cin_g, cout_g, kx, ky, self.spec)
        return self._nce(node, kind, sources, macs, out_px * cycles, min_stages=groups, note=f"{groups} groups")

    def _deconvolution(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        x, w = _in_shape(node, 0), _in_shape(node, 1)
        in_px = _numel(x) // int(x[1])
        macs = in_px * _numel(w)  # [G,] Cin(/G), Cout(/G), k, k: the group factor cancels
        return self._shave(node, kind, sources, macs=macs, note="SHAVE software deconvolution")

    def _matmul(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        a, b = _in_shape(node, 0), _in_shape(node, 1)
        attrs = node.get_attributes()
        k = int(a[-2] if attrs.get("transpose_a") else a[-1])
        n = int(b[-2] if attrs.get("transpose_b") else b[-1])
        rows = _numel(a) // k
        macs = rows * k * n
        if sources[1].get_name() in self.constant and len(b) == 2:
            self.absorbs_bias.add(node.get_name())
            self.absorbs_act[node.get_name()] = "fc"
            return self._nce(node, kind, sources, macs, rows * nce_conv_cycles(k, n, 1, 1, self.spec),
                             note="fully connected on the NCE")
        return self._shave(node, kind, sources, macs=macs, note="SHAVE GEMM (both operands are activations)")

    def _pooling(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        x, y = _in_shape(node, 0), _out_shape(node, 0)
        attrs = node.get_attributes()
        kernel, strides = list(attrs["kernel"]), list(attrs["strides"])
        limits = self.costs["nce"]
        if list(x[2:]) == kernel:
            return self._shave(node, kind, sources, note="SHAVE pooling (global)")
        # unequal strides: the plugin's pooling parser sets tryHW = false, as for a convolution
        # (frontend/parse_pooling.cpp, "HW restrictions"); so do a stride or kernel over the NCE's limits
        problems = nce.outside_limits(strides, kernel, limits)
        if problems:
            return self._shave(node, kind, sources, note="SHAVE pooling: " + "; ".join(problems))
        # the pooling unit reads every window element once: an inference, not a documented rate
        cycles = _numel(y) * _numel(kernel) / limits["macs_per_cycle"]
        self.absorbs_act[node.get_name()] = "pool"
        return self._nce(node, kind, sources, 0, cycles, note="NCE pooling")

    def _fusable_activation(self, node: Any, kind: str, sources: Sequence[Any]) -> Work | None:
        src = sources[0]
        producer = self.absorbs_act.get(src.get_name())
        if producer and self._single_consumer(src) and self._merges_post_op(node, kind, sources, producer):
            return None  # applied by the NCE / eltwise kernel on its output
        return self._eltwise(node, kind, sources)

    def _merges_post_op(self, node: Any, kind: str, sources: Sequence[Any], producer: str) -> bool:
        """Whether the MYRIAD plugin merges activation ``kind`` into its ``producer``'s stage.

        After intel_myriad (2022.3 lineage): ``mergeHwStages`` merges ReLU into every hardware stage,
        and only into a convolution also Clamp with min 0 and LeakyRelu whose 1/slope is an integer
        (merge_hw_stages.cpp); ``mergeEltwiseAndReLU`` merges ReLU, LeakyRelu and any Clamp into
        the SHAVE eltwise kernels (merge_eltwise_and_relu.cpp). A PRelu is a LeakyRelu only with a
        one-element slope (legacy ConvertPReLUToReLUIE); a per-channel PRelu is its own SHAVE stage
        (stages/prelu.cpp) that nothing merges. Why: a per-channel PRelu, a PRelu of slope 0.3 after
        a convolution and a Clamp after a fully connected layer were priced as free.
        """
        if kind == "Relu":
            return True
        if producer not in ("conv", "eltwise"):
            return False
        if kind == "Clamp":
            return producer == "eltwise" or float(node.get_attributes().get("min", 0.0)) == 0.0
        if kind == "PRelu":
            values = _constant_values(sources[1]) if len(sources) > 1 else None
            if values is None or values.size != 1:
                return False  # per-channel slopes: a PRelu stage of its own
            if producer == "eltwise" or values[0] == 0:
                return True
            reciprocal = np.float32(1.0) / values[0]  # the plugin's "only integer scales are supported"
            return bool(abs(np.ceil(reciprocal) - reciprocal) <= 1e-6 * max(1.0, abs(float(reciprocal))))
        return False

    def _eltwise(self, node: Any, kind: str, sources: Sequence[Any]) -> Work | None:
        if kind == "Convert":
            types = (node.input(0).get_element_type().get_type_name(), node.get_output_element_type(0).get_type_name())
            if all(t in FLOAT_TYPES for t in types):
                self._inherit(node, sources[0])
                return None  # the device computes in FP16 either way
        if kind in ("Add", "Multiply", "Subtract") and len(sources) == 2:
            consts = [s.get_name() in self.constant for s in sources]
            if any(consts) and not all(consts):
                src = sources[consts.index(False)]
                const = sources[consts.index(True)]
                if (src.get_name() in self.absorbs_bias and self._single_consumer(src)
                        and _per_channel(_out_shape(const, 0), _out_shape(src, 0))):
                    self._inherit(node, src)
                    return None  # the convolution's bias or scale
        if kind in MERGING_ELTWISE and sum(s.get_name() not in self.constant for s in sources) >= 2:
            self.absorbs_act[node.get_name()] = "eltwise"
        return self._shave(node, kind, sources)

    def _inherit(self, node: Any, src: Any) -> None:
        if src.get_name() in self.absorbs_bias:
            self.absorbs_bias.add(node.get_name())
        if src.get_name() in self.absorbs_act:
            self.absorbs_act[node.get_name()] = self.absorbs_act[src.get_name()]

    def _data(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        # constant inputs of data kernels are sizes, axes and indices, not tensors the kernel streams
        nbytes = self._activations_in(node, sources) + self._out_bytes(node)
        return Work(node.get_friendly_name(), kind, "shave", bytes=nbytes, shave_bytes=nbytes)

    def _unknown(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        # Its arithmetic is unknown here (an LSTMSequence does 5e8 MACs, priced as 0): the layer is
        # flagged so the estimate says, beside its total, that the total is a lower bound.
        work = self._shave(node, kind, sources, note=f"{kind} is not in the op table: costed as a SHAVE data "
                                                      "kernel, by its bytes alone (its arithmetic is not priced)")
        return replace(work, unpriced=True)


#: Eltwise op types whose SHAVE kernel takes a ReLU/LeakyRelu/Clamp as its post-operation: the
#: Sum (Add, Subtract), Prod, Max, Min, Div, Squared_diff and Pow stages of
#: intel_myriad merge_eltwise_and_relu.cpp (2022.3 lineage); Select is a stage of its own.
MERGING_ELTWISE = ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Divide", "SquaredDifference", "Power")


def _constant_values(node: Any) -> np.ndarray | None:
    """The values of a Constant, or of a Convert of one (an FP16-compressed IR's weights), as a flat
    float32 array; None for anything else."""
    while node.get_type_name() == "Convert" and node.get_input_size() == 1:
        node = node.input(0).get_source_output().get_node()
    if node.get_type_name() != "Constant":
        return None
    return np.asarray(node.get_data(), dtype=np.float32).reshape(-1)


def _per_channel(const_shape: Sequence[int], out_shape: Sequence[int]) -> bool:
    """Whether a constant of ``const_shape`` is a per-channel bias or scale of an output of
    ``out_shape`` (numpy broadcasting, channels on axis 1): 1 everywhere but that axis. A constant
    over the spatial axes is not a bias the NCE applies: the Add is a SHAVE kernel reading it."""
    rank = len(out_shape)
    if len(const_shape) > rank:
        return False
    aligned = [1] * (rank - len(const_shape)) + list(const_shape)
    return all(int(d) == 1 for i, d in enumerate(aligned) if i != min(1, rank - 1))


OP_CATEGORIES = ("free", "in_place_on_channel_axis", "convolution", "deconvolution", "matmul", "pooling",
                 "fusable_activation", "eltwise", "data")


def _op_categories(ops: dict[str, list[str]]) -> dict[str, str]:
    """op type -> category from the ``[ops]`` table; a type in two categories is an error."""
    unknown = set(ops) - set(OP_CATEGORIES)
    if unknown:
        raise ValueError(f"unknown op categories {sorted(unknown)}; valid: {list(OP_CATEGORIES)}")
    category: dict[str, str] = {}
    for cat in OP_CATEGORIES:
        for name in ops.get(cat, []):
            if name in category:
                raise ValueError(f"op type {name!r} is listed under both {category[name]!r} and {cat!r}")
            category[name] = cat
    return category


def _numel(shape: Iterable[Any]) -> int:
    return int(np.prod([int(d) for d in shape], dtype=np.int64))


def _in_shape(node: Any, index: int) -> list[int]:
    """Static shape of an input as a list (``ov.Shape`` cannot be sliced in OpenVINO 2022.3)."""
    return [int(d) for d in node.input(index).get_shape()]


def _out_shape(node: Any, index: int) -> list[int]:
    """Static shape of an output as a list."""
    return [int(d) for d in node.get_output_shape(index)]


def _type_size(etype: Any) -> int:
    """Bytes per element of an ``ov.Type`` (a property in 2024+, a method in older bindings)."""
    size = getattr(etype, "size", None)
    if size is None:
        return int(etype.get_size())
    return int(size() if callable(size) else size)


def _device_bytes(etype: Any) -> int:
    """Bytes per element of a tensor on the VPU: FP16 for every floating type; an integer tensor
    (a u8 model's counts, indices) in its own type, since U8 and S32 are VPU data types
    (intel_myriad data_desc.hpp). Why: pricing the Convert of u8 counts as an FP16 read charged a
    u8 model the SHAVE time of a u16 one."""
    if etype.is_real():
        return FP16_BYTES
    return _type_size(etype)


def _require_static(node: Any) -> None:
    for i in range(node.get_input_size()):
        if not node.input(i).get_partial_shape().is_static:
            raise ValueError(f"{node.get_type_name()} {node.get_friendly_name()!r} has a dynamic input shape "
                             f"{node.input(i).get_partial_shape()}; the estimate needs static shapes")


def model_work(model: Model, costs: dict[str, Any] | None = None, link: str | None = None) -> list[Work]:
    """The :class:`Work` of every costed layer of ``model`` (free layers are left out)."""
    costs = load_costs(costs)
    link = link or costs["transfer"]["link"]
    links = sorted(costs["transfer"]["bytes_per_s"])
    if link not in links:
        raise ValueError(f"unknown link {link!r}; valid: {links}")
    return _Walker(costs, link).walk(model)


# --------------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------------


def _stack(works: Sequence[Work]) -> dict[str, np.ndarray]:
    arrays = {f: np.array([getattr(w, f) for w in works], dtype=np.float64) for f in _WORK_ARRAYS}
    arrays["unit"] = np.array([w.unit for w in works])
    arrays["link"] = np.array([w.link for w in works])
    return arrays


def _price(arrays: dict[str, np.ndarray], costs: dict[str, Any]) -> np.ndarray:
    """Seconds per layer: max(compute, memory) + fixed overheads, by unit."""
    nce, mem, shave, over, tr = costs["nce"], costs["memory"], costs["shave"], costs["overhead"], costs["transfer"]
    unit = arrays["unit"]
    t_nce = (np.maximum(arrays["nce_cycles"] / nce["cycles_per_s"],
                        arrays["cmx_bytes"] / mem["cmx_bytes_per_s"] + arrays["ddr_bytes"] / mem["ddr_bytes_per_s"])
             + over["layer_s"] + arrays["stages"] * nce["tile_overhead_s"])
    t_shave = (np.maximum(arrays["shave_macs"] / shave["macs_per_s"], arrays["shave_bytes"] / shave["bytes_per_s"])
               + over["layer_s"])
    rate = np.array([tr["bytes_per_s"].get(link, np.nan) for link in arrays["link"]]) if len(unit) else np.zeros(0)
    t_transfer = tr["latency_s"] + arrays["transfer_bytes"] / np.where(unit == "transfer", rate, 1.0)
    return np.select([unit == "nce", unit == "shave", unit == "transfer"], [t_nce, t_shave, t_transfer], 0.0)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerEstimate:
    """One layer's estimated time on the Myriad X and what it was derived from."""

    name: str
    type: str
    unit: str  # "nce" | "shave" | "transfer"
    macs: int
    bytes: int
    ms: float
    note: str = ""
    unpriced: bool = False  # op type not in the cost table: priced by its bytes alone, MACs ignored


@dataclass(frozen=True)
class LatencyEstimate:
    """An ESTIMATE of one inference's latency on the Myriad X; not a measurement."""

    model_name: str
    link: str
    layers: tuple[LayerEstimate, ...]

    @property
    def total_ms(self) -> float:
        """Estimated end-to-end latency: every layer in sequence plus the transfers."""
        return float(sum(layer.ms for layer in self.layers))

    @property
    def estimated_latency_ms(self) -> float:
        """Same as :attr:`total_ms`, under the name used in reports."""
        return self.total_ms

    @property
    def unpriced_ops(self) -> list[str]:
        """Op types (sorted, each once) not in the cost table, priced as SHAVE data kernels by bytes alone.

        Why: whatever arithmetic such an op does is left out, so an estimate with any is a lower
        bound of unknown error; callers that drop the per-layer list (the runtime's status, hil,
        the search) must still see this list and not take the total at its word.
        """
        return sorted({la.type for la in self.layers if la.unpriced})

    def by_unit(self) -> dict[str, float]:
        """Estimated milliseconds spent on the NCE, the SHAVEs and the link."""
        return {unit: float(sum(la.ms for la in self.layers if la.unit == unit)) for unit in UNITS}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; every figure is named as an estimate so no report mistakes it for one.

        ``unpriced_ops`` (top level, kept where the layers are dropped) lists the op types priced by
        bytes alone (:attr:`unpriced_ops`); empty when every layer was priced by its rule.
        """
        return {
            "kind": "ESTIMATE",
            "device": "Intel Movidius Myriad X (cost model, runtime/latency.py)",
            "model": self.model_name,
            "link": self.link,
            "estimated_latency_ms": round(self.total_ms, 4),
            "estimated_ms_by_unit": {k: round(v, 4) for k, v in self.by_unit().items()},
            "total_macs": int(sum(la.macs for la in self.layers)),
            "unpriced_ops": self.unpriced_ops,
            "layers": [{"name": la.name, "type": la.type, "unit": la.unit, "macs": la.macs, "bytes": la.bytes,
                        "estimated_ms": round(la.ms, 5), "note": la.note} for la in self.layers],
        }


def estimate_latency(model: Model, costs: dict[str, Any] | None = None, *,
                     link: str | None = None) -> LatencyEstimate:
    """Estimate the latency of ``model`` on the Myriad X, layer by layer.

    Args:
        model: an ``ov.Model`` with static shapes (``ov.Core().read_model`` of an IR, or built).
        costs: overrides of ``runtime/myriadx_costs.toml`` (any subset of its tables and keys).
        link: ``"usb3"`` or ``"usb2"``; default ``costs["transfer"]["link"]``.

    Raises:
        ValueError: on dynamic shapes, an unknown link, an unknown cost key or a constant out of
            range (:func:`check_costs`).
    """
    full = load_costs(costs)
    link = link or full["transfer"]["link"]
    works = model_work(model, full, link)
    seconds = _price(_stack(works), full) if works else np.zeros(0)
    layers = tuple(LayerEstimate(w.name, w.type, w.unit, int(w.macs), int(w.bytes), float(s) * 1e3, w.note,
                                 w.unpriced) for w, s in zip(works, seconds))
    return LatencyEstimate(model.get_friendly_name(), link, layers)
