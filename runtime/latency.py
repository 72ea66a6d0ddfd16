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
* the model input and output crossing USB 3 (or USB 2).

Each layer costs ``max(compute, memory) + overheads``. The constants live in
``runtime/myriadx_costs.toml``, each with its source; the few that no document gives were fitted by
:func:`fit_costs` to the published latencies of :data:`REFERENCES` (least squares on log latency).
Everything this module returns is labelled an estimate; it is never a measurement.

Calibration (``calibration_table()`` with the constants in the TOML; link as measured):

==========================  =========  =========  =====  =====
reference                   published  estimated  ratio  GMACs
==========================  =========  =========  =====  =====
MobileOne-S0 224                 11.1       11.8   1.07  0.275
ResNet-18 224                    19.7       20.2   1.03  1.814
ResNet-50 224                    56.5       61.6   1.09  4.089
DeepLabV3 256 (approx.)          48.1       49.3   1.02  1.264
DeepLabV3 513 (approx.)         253.0      197.1   0.78  5.232
YOLOv8n 416                      56.9       55.0   0.97  1.847
YOLOv8n 640                     123.6      129.4   1.05  4.371
Sanket 256x256 16..128 USB2     133.3      154.3   1.16  1.772
Sanket 256x256 8..64 USB2        89.3      103.0   1.15  0.455
Sanket 256x128 4..32 USB2        43.0       42.5   0.99  0.060
Sanket 256x128 8..64 USB2        57.0       51.5   0.90  0.228
Sanket 256x128 16..128 USB2      89.0       77.0   0.86  0.886
==========================  =========  =========  =====  =====

Every reference is within a factor 1.29 (RMS log error 0.11), but nine constants were fitted to
twelve figures, so that is an in-sample figure. Refitting without each reference in turn and
predicting it (leave-one-out) gave ratios 0.62 (DeepLabV3 513) to 1.49 (MobileOne-S0), the others
within 0.76..1.30: expect about a factor 1.5 on a network unlike the references. The Luxonis
figures include the USB 3 readback; the Sanket ones are over USB 2.0 with FP32 input and output.

The reference networks are built here as ``ov.Model`` graphs from their published architectures:
ResNet-18/50 (torchvision), MobileOne-S0 (re-parameterised inference form), YOLOv8n (ultralytics
yaml, head without box decoding) and the NitinJSanket encoder-decoders (``NCS-2/tf_model.py``) are
faithful; DeepLabV3 is an approximation (DeepLabV3+ with a MobileNetV2 backbone at output stride 16,
two classes and an arg-max, as in the Luxonis person-segmentation model; the exact Luxonis graph is
not published).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from runtime.config import load_defaults, merge_into
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
    return costs


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
        self.absorbs_act: set[str] = set()  # outputs a ReLU-like activation can fuse into

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
        return sum(_numel(_in_shape(node, i)) for i, s in enumerate(sources)
                   if s.get_name() not in self.constant) * FP16_BYTES

    def _weights_in(self, node: Any, sources: Sequence[Any]) -> int:
        return sum(_numel(_in_shape(node, i)) for i, s in enumerate(sources)
                   if s.get_name() in self.constant) * FP16_BYTES

    def _out_bytes(self, node: Any) -> int:
        # outputs nobody reads (MaxPool-8 indices) are not written by the device kernel
        used = [i for i in range(node.get_output_size()) if i == 0 or node.output(i).get_target_inputs()]
        return sum(_numel(_out_shape(node, i)) for i in used) * FP16_BYTES

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
        reasons = self._software_reasons(len(x), attrs, kernel)
        if reasons:
            return self._shave(node, kind, sources, macs=macs, note="SHAVE software convolution: " + "; ".join(reasons))
        self.absorbs_bias.add(node.get_name())
        self.absorbs_act.add(node.get_name())
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

    def _software_reasons(self, rank: int, attrs: dict[str, Any], kernel: Sequence[int]) -> list[str]:
        """Why the MYRIAD plugin would run this convolution on the SHAVEs instead of the NCE."""
        nce = self.costs["nce"]
        strides, dilations = list(attrs.get("strides", [1])), list(attrs.get("dilations", [1]))
        reasons = []
        if rank != 4:
            reasons.append(f"{rank}D tensors (the NCE takes 4D)")
        if any(d != 1 for d in dilations) and not nce["hw_dilation"]:
            reasons.append(f"dilation {dilations}")
        if len(set(strides)) > 1:
            reasons.append(f"unequal strides {strides}")
        if max(strides) > nce["max_stride"]:
            reasons.append(f"stride {max(strides)} > {nce['max_stride']}")
        if max(kernel) > nce["max_kernel"]:
            reasons.append(f"kernel {max(kernel)} > {nce['max_kernel']}")
        return reasons

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
            self.absorbs_act.add(node.get_name())
            return self._nce(node, kind, sources, macs, rows * nce_conv_cycles(k, n, 1, 1, self.spec),
                             note="fully connected on the NCE")
        return self._shave(node, kind, sources, macs=macs, note="SHAVE GEMM (both operands are activations)")

    def _pooling(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        x, y = _in_shape(node, 0), _out_shape(node, 0)
        attrs = node.get_attributes()
        kernel, strides = list(attrs["kernel"]), list(attrs["strides"])
        nce = self.costs["nce"]
        if list(x[2:]) == kernel or max(kernel) > nce["max_kernel"] or max(strides) > nce["max_stride"]:
            return self._shave(node, kind, sources, note="SHAVE pooling (global or outside NCE limits)")
        # the pooling unit reads every window element once: an inference, not a documented rate
        cycles = _numel(y) * _numel(kernel) / nce["macs_per_cycle"]
        return self._nce(node, kind, sources, 0, cycles, note="NCE pooling")

    def _fusable_activation(self, node: Any, kind: str, sources: Sequence[Any]) -> Work | None:
        src = sources[0]
        if src.get_name() in self.absorbs_act and self._single_consumer(src):
            if kind != "Clamp" or float(node.get_attributes().get("min", 0.0)) == 0.0:
                return None  # applied by the NCE / eltwise kernel on its output
        return self._eltwise(node, kind, sources)

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
                if src.get_name() in self.absorbs_bias and self._single_consumer(src):
                    self._inherit(node, src)
                    return None  # the convolution's bias or scale
        if len(sources) >= 2 and sum(s.get_name() not in self.constant for s in sources) >= 2:
            self.absorbs_act.add(node.get_name())
        return self._shave(node, kind, sources)

    def _inherit(self, node: Any, src: Any) -> None:
        if src.get_name() in self.absorbs_bias:
            self.absorbs_bias.add(node.get_name())
        if src.get_name() in self.absorbs_act:
            self.absorbs_act.add(node.get_name())

    def _data(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        # constant inputs of data kernels are sizes, axes and indices, not tensors the kernel streams
        nbytes = self._activations_in(node, sources) + self._out_bytes(node)
        return Work(node.get_friendly_name(), kind, "shave", bytes=nbytes, shave_bytes=nbytes)

    def _unknown(self, node: Any, kind: str, sources: Sequence[Any]) -> Work:
        return self._shave(node, kind, sources, note=f"{kind} is not in the op table: costed as a SHAVE data kernel")


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

    def by_unit(self) -> dict[str, float]:
        """Estimated milliseconds spent on the NCE, the SHAVEs and the link."""
        return {unit: float(sum(la.ms for la in self.layers if la.unit == unit)) for unit in UNITS}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; every figure is named as an estimate so no report mistakes it for one."""
        return {
            "kind": "ESTIMATE",
            "device": "Intel Movidius Myriad X (cost model, runtime/latency.py)",
            "model": self.model_name,
            "link": self.link,
            "estimated_latency_ms": round(self.total_ms, 4),
            "estimated_ms_by_unit": {k: round(v, 4) for k, v in self.by_unit().items()},
            "total_macs": int(sum(la.macs for la in self.layers)),
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
        ValueError: on dynamic shapes, an unknown link or an unknown cost key.
    """
    full = load_costs(costs)
    link = link or full["transfer"]["link"]
    works = model_work(model, full, link)
    seconds = _price(_stack(works), full) if works else np.zeros(0)
    layers = tuple(LayerEstimate(w.name, w.type, w.unit, int(w.macs), int(w.bytes), float(s) * 1e3, w.note)
                   for w, s in zip(works, seconds))
    return LatencyEstimate(model.get_friendly_name(), link, layers)


# --------------------------------------------------------------------------------------------------
# Reference networks with published Myriad X latencies (for calibration)
# --------------------------------------------------------------------------------------------------


def _opsets() -> tuple[Any, Any]:
    try:
        import openvino.opset8 as o8
        import openvino.opset10 as o10
    except ImportError:  # pragma: no cover - OpenVINO 2022.3
        from openvino.runtime import opset8 as o8
        from openvino.runtime import opset10 as o10
    return o8, o10


class _Net:
    """A tiny graph builder for reference networks: FP16 throughout, zero weights (cost only)."""

    def __init__(self, shape: Sequence[int], input_type: str = "u8"):
        self.o8, self.o10 = _opsets()
        np_type = {"u8": np.uint8, "f32": np.float32, "f16": np.float16}[input_type]
        self.param = self.o8.parameter(list(shape), np_type, name="input")
        self.x = self.o8.convert(self.param, "f16")

    @staticmethod
    def shape(x: Any) -> list[int]:
        """Static shape of a node's first output or of an output handle."""
        return [int(d) for d in (x.get_output_shape(0) if hasattr(x, "get_output_shape") else x.get_shape())]

    @staticmethod
    def channels(x: Any) -> int:
        return _Net.shape(x)[1]

    def const(self, shape: Sequence[int]) -> Any:
        return self.o8.constant(np.zeros(shape, np.float16))

    def act(self, x: Any, kind: str | None) -> Any:
        if kind == "relu":
            return self.o8.relu(x)
        if kind == "relu6":
            return self.o8.clamp(x, 0.0, 6.0)
        if kind == "silu":
            return self.o8.swish(x, self.o8.constant(np.float16(1.0)))
        return x

    def conv(self, x: Any, cout: int, k: int = 3, s: int = 1, act: str | None = "relu", groups: int = 1,
             dilation: int = 1, bias: bool = True) -> Any:
        cin = self.channels(x)
        pad = dilation * (k - 1) // 2
        if groups == 1:
            y = self.o8.convolution(x, self.const([cout, cin, k, k]), [s, s], [pad, pad], [pad, pad], [dilation] * 2)
        else:
            y = self.o8.group_convolution(x, self.const([groups, cout // groups, cin // groups, k, k]), [s, s],
                                          [pad, pad], [pad, pad], [dilation] * 2)
        if bias:
            y = self.o8.add(y, self.const([1, cout, 1, 1]))
        return self.act(y, act)

    def dwconv(self, x: Any, k: int = 3, s: int = 1, act: str | None = "relu", dilation: int = 1) -> Any:
        c = self.channels(x)
        return self.conv(x, c, k, s, act, groups=c, dilation=dilation)

    def deconv(self, x: Any, cout: int, k: int, s: int, act: str | None = "relu") -> Any:
        # TF "same" for k=3, s=2 gives exactly 2x: pad one at the end
        pe = k - s if s > 1 else (k - 1) // 2
        pb = 0 if s > 1 else (k - 1) // 2
        y = self.o8.convolution_backprop_data(x, self.const([self.channels(x), cout, k, k]), [s, s],
                                              pads_begin=[pb, pb], pads_end=[pe, pe])
        return self.act(self.o8.add(y, self.const([1, cout, 1, 1])), act)

    def maxpool(self, x: Any, k: int, s: int, pad: int = 0) -> Any:
        return self.o8.max_pool(x, [s, s], [1, 1], [pad, pad], [pad, pad], [k, k]).output(0)

    def gap(self, x: Any) -> Any:
        return self.o8.reduce_mean(x, self.o8.constant(np.array([2, 3], np.int64)), keep_dims=True)

    def fc(self, x: Any, n: int) -> Any:
        flat = self.o8.reshape(x, self.o8.constant(np.array([1, -1], np.int64)), special_zero=False)
        k = self.shape(flat)[1]
        return self.o8.add(self.o8.matmul(flat, self.const([k, n]), False, False), self.const([1, n]))

    def resize(self, x: Any, size: Sequence[int], mode: str = "linear") -> Any:
        sizes = self.o8.constant(np.array(size, np.int64))
        scales = self.o8.constant(np.ones(2, np.float32))
        axes = self.o8.constant(np.array([2, 3], np.int64))
        if mode == "nearest":
            return self.o10.interpolate(x, sizes, scales, "nearest", "sizes", nearest_mode="floor",
                                        coordinate_transformation_mode="asymmetric", axes=axes)
        return self.o10.interpolate(x, sizes, scales, "linear", "sizes", coordinate_transformation_mode="align_corners",
                                    axes=axes)

    def concat(self, xs: Sequence[Any]) -> Any:
        return self.o8.concat(list(xs), 1)

    def model(self, outputs: Sequence[Any], name: str, output_type: str = "f16") -> Model:
        def etype(o: Any) -> str:
            node_type = o.get_output_element_type(0) if hasattr(o, "get_output_element_type") else o.get_element_type()
            return node_type.get_type_name()

        outs = [self.o8.convert(o, output_type) if output_type and etype(o) != output_type else o for o in outputs]
        return Model([self.o8.result(o) for o in outs], [self.param], name)


def resnet(depth: int, size: int = 224) -> Model:
    """torchvision ResNet-18/34 (basic blocks) or -50 (bottlenecks), 1000 classes, softmax."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    bottleneck = depth >= 50
    net = _Net([1, 3, size, size])
    x = net.maxpool(net.conv(net.x, 64, 7, 2), 3, 2, 1)
    for stage, n in enumerate(blocks):
        width = 64 * 2 ** stage
        for i in range(n):
            s = 2 if i == 0 and stage > 0 else 1
            cout = width * 4 if bottleneck else width
            if bottleneck:
                y = net.conv(net.conv(net.conv(x, width, 1), width, 3, s), cout, 1, act=None)
            else:
                y = net.conv(net.conv(x, width, 3, s), cout, 3, act=None)
            short = net.conv(x, cout, 1, s, act=None) if (s != 1 or net.channels(x) != cout) else x
            x = net.o8.relu(net.o8.add(y, short))
    logits = net.fc(net.gap(x), 1000)
    return net.model([net.o8.softmax(logits, 1)], f"resnet{depth}-{size}")


def mobileone_s0(size: int = 224) -> Model:
    """MobileOne-S0 after re-parameterisation: depthwise 3x3 + pointwise 1x1 blocks (Apple, 2022)."""
    net = _Net([1, 3, size, size])
    x = net.conv(net.x, 48, 3, 2)
    for width, n in ((48, 2), (128, 8), (256, 10), (1024, 1)):
        for i in range(n):
            x = net.conv(net.dwconv(x, 3, 2 if i == 0 else 1), width, 1)
    logits = net.fc(net.gap(x), 1000)
    return net.model([net.o8.softmax(logits, 1)], f"mobileone-s0-{size}")


#: MobileNetV2 inverted-residual stages: (expansion t, channels c, blocks n, first stride s).
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))


def _inverted_residual(net: _Net, x: Any, t: int, c: int, s: int, dilation: int = 1) -> Any:
    cin = net.channels(x)
    y = net.conv(x, cin * t, 1, act="relu6") if t != 1 else x
    y = net.conv(net.dwconv(y, 3, s, act="relu6", dilation=dilation), c, 1, act=None)
    return net.o8.add(x, y) if s == 1 and cin == c else y


def deeplabv3_mnv2(size: int = 256, classes: int = 2) -> Model:
    """Approximation of Luxonis' DeepLabV3: DeepLabV3+ / MobileNetV2, output stride 16, arg-max output."""
    net = _Net([1, 3, size, size])
    x = net.conv(net.x, 32, 3, 2, act="relu6")
    low = None
    dilation = 1
    for t, c, n, s in MOBILENET_V2:
        for i in range(n):
            stride = s if i == 0 else 1
            if stride == 2 and c == 160:  # output stride 16: this stride becomes a dilation
                stride, dilation = 1, 2
            x = _inverted_residual(net, x, t, c, stride, dilation if c >= 160 else 1)
        if c == 24:
            low = x
    h = net.shape(x)[2]
    pooled = net.resize(net.conv(net.gap(x), 256, 1), [h, h])
    aspp = net.conv(net.concat([pooled, net.conv(x, 256, 1)]), 256, 1)
    hl = net.shape(low)[2]
    y = net.concat([net.resize(aspp, [hl, hl]), net.conv(low, 48, 1)])
    for _ in range(2):
        y = net.conv(net.dwconv(y, 3), 256, 1)
    logits = net.resize(net.conv(y, classes, 1, act=None), [size, size])
    index = net.o8.topk(logits, 1, 1, "max", "none", "i32").output(1)
    return net.model([index], f"deeplabv3-mnv2-{size}", output_type="")


def _c2f(net: _Net, x: Any, cout: int, n: int, shortcut: bool) -> Any:
    c = cout // 2
    y = net.conv(x, 2 * c, 1, act="silu")
    parts = list(net.o8.split(y, net.o8.constant(np.int64(1)), 2).outputs())
    for _ in range(n):
        b = net.conv(net.conv(parts[-1], c, 3, act="silu"), c, 3, act="silu")
        parts.append(net.o8.add(parts[-1], b) if shortcut else b)
    return net.conv(net.concat(parts), cout, 1, act="silu")


def yolov8n(size: int = 416, classes: int = 80) -> Model:
    """YOLOv8n (ultralytics yolov8.yaml, scale n) with the three raw head outputs, no box decoding."""
    net = _Net([1, 3, size, size])
    conv = lambda x, c, k=3, s=1: net.conv(x, c, k, s, act="silu")  # noqa: E731
    x = conv(conv(net.x, 16, 3, 2), 32, 3, 2)
    x = _c2f(net, x, 32, 1, True)
    p3 = _c2f(net, conv(x, 64, 3, 2), 64, 2, True)
    p4 = _c2f(net, conv(p3, 128, 3, 2), 128, 2, True)
    x = _c2f(net, conv(p4, 256, 3, 2), 256, 1, True)
    y = conv(x, 128, 1)
    m1 = net.maxpool(y, 5, 1, 2)
    m2 = net.maxpool(m1, 5, 1, 2)
    p5 = conv(net.concat([y, m1, m2, net.maxpool(m2, 5, 1, 2)]), 256, 1)
    up = lambda t, ref: net.resize(t, net.shape(ref)[2:], "nearest")  # noqa: E731
    h4 = _c2f(net, net.concat([up(p5, p4), p4]), 128, 1, False)
    o3 = _c2f(net, net.concat([up(h4, p3), p3]), 64, 1, False)
    o4 = _c2f(net, net.concat([conv(o3, 64, 3, 2), h4]), 128, 1, False)
    o5 = _c2f(net, net.concat([conv(o4, 128, 3, 2), p5]), 256, 1, False)
    outs = []
    for level in (o3, o4, o5):
        box = net.conv(conv(conv(level, 64), 64), 64, 1, act=None)
        cls = net.conv(conv(conv(level, max(64, classes)), max(64, classes)), classes, 1, act=None)
        outs.append(net.concat([box, net.o8.sigmoid(cls)]))
    return net.model(outs, f"yolov8n-{size}")


def sanket_encoder_decoder(height: int, width: int, widths: Sequence[int]) -> Model:
    """NitinJSanket/prg_prgncs NCS-2/tf_model.py: residual encoder + transposed-conv decoder, FP32 I/O."""
    net = _Net([1, 1, height, width], input_type="f32")
    x = net.x
    for f in widths:
        y = net.conv(net.conv(x, f, 3), f, 3, act=None)
        short = x if net.channels(x) == f else net.conv(x, f, 1, act=None)
        x = net.maxpool(net.o8.relu(net.o8.add(y, short)), 2, 2)
    for f in reversed(widths):
        x = net.deconv(net.deconv(x, f, 3, 2), f, 3, 1)
    out = net.conv(x, 4, 3, act=None)
    return net.model([out], f"sanket-{height}x{width}-{widths[0]}-{widths[-1]}", output_type="f32")


def _sanket(height: int, width: int, first: int) -> Model:
    """The published Sanket variants: four levels doubling from ``first`` filters."""
    return sanket_encoder_decoder(height, width, tuple(first * 2 ** i for i in range(4)))


@dataclass(frozen=True)
class Reference:
    """A network with a published Myriad X latency."""

    name: str
    build: Callable[[], Model]
    published_ms: float
    link: str
    source: str


_LUXONIS = "Luxonis RVC2 NN performance table (docs.luxonis.com/software/ai-inference/performance), via myriadx.md"
_SANKET = "github NitinJSanket/prg_prgncs README, NCS2 over USB 2.0, via myriadx.md"

REFERENCES: tuple[Reference, ...] = (
    Reference("MobileOne-S0 224", mobileone_s0, 11.1, "usb3", _LUXONIS),
    Reference("ResNet-18 224", lambda: resnet(18), 19.7, "usb3", _LUXONIS),
    Reference("ResNet-50 224", lambda: resnet(50), 56.5, "usb3", _LUXONIS),
    Reference("DeepLabV3 256 (approx.)", lambda: deeplabv3_mnv2(256), 48.1, "usb3", _LUXONIS),
    Reference("DeepLabV3 513 (approx.)", lambda: deeplabv3_mnv2(513), 253.0, "usb3", _LUXONIS),
    Reference("YOLOv8n 416", lambda: yolov8n(416), 56.9, "usb3", _LUXONIS),
    Reference("YOLOv8n 640", lambda: yolov8n(640), 123.6, "usb3", _LUXONIS + " (same table; not in myriadx.md)"),
    Reference("Sanket 256x256 16..128", lambda: _sanket(256, 256, 16), 1000 / 7.5, "usb2", _SANKET),
    Reference("Sanket 256x256 8..64", lambda: _sanket(256, 256, 8), 1000 / 11.2, "usb2", _SANKET),
    Reference("Sanket 256x128 4..32", lambda: _sanket(256, 128, 4), 43.0, "usb2", _SANKET),
    Reference("Sanket 256x128 8..64", lambda: _sanket(256, 128, 8), 57.0, "usb2", _SANKET),
    Reference("Sanket 256x128 16..128", lambda: _sanket(256, 128, 16), 89.0, "usb2", _SANKET),
)


def calibration_table(costs: dict[str, Any] | None = None,
                      references: Sequence[Reference] = REFERENCES) -> list[dict[str, Any]]:
    """Published vs estimated latency of every reference network under ``costs``.

    Each row: name, published_ms, estimated_ms, ratio (estimated / published), gmacs, link, source.
    """
    rows = []
    for ref in references:
        est = estimate_latency(ref.build(), costs, link=ref.link)
        rows.append({"name": ref.name, "published_ms": ref.published_ms, "estimated_ms": round(est.total_ms, 2),
                     "ratio": round(est.total_ms / ref.published_ms, 3),
                     "gmacs": round(sum(la.macs for la in est.layers) / 1e9, 3), "link": ref.link, "source": ref.source})
    return rows


def format_calibration_table(rows: Sequence[dict[str, Any]]) -> str:
    """The table as fixed-width text (for the docstring and reports)."""
    lines = [f"{'reference':28s}  {'published':>9s}  {'estimated':>9s}  {'ratio':>5s}"]
    lines += [f"{r['name']:28s}  {r['published_ms']:9.1f}  {r['estimated_ms']:9.1f}  {r['ratio']:5.2f}" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Fitting the calibrated constants
# --------------------------------------------------------------------------------------------------

#: The constants fitted to the references, with the physically plausible range searched.
FITTED: dict[tuple[str, ...], tuple[float, float]] = {
    ("nce", "cycles_per_s"): (2e8, 1.95e9),  # upper bound: "1 TOPS" / 2 / 256 [myriadx.md]
    ("nce", "tile_overhead_s"): (1e-7, 1e-4),
    ("memory", "ddr_bytes_per_s"): (1e9, 1.5e10),  # at most LPDDR4-3733 x32 (an inference)
    ("shave", "macs_per_s"): (1e9, 5e10),
    ("shave", "bytes_per_s"): (2e8, 2e10),
    ("overhead", "layer_s"): (1e-7, 5e-4),
    ("transfer", "latency_s"): (1e-6, 2e-3),
    ("transfer", "bytes_per_s", "usb3"): (5e7, 4.5e8),  # below the 5 Gbit/s signalling rate
    ("transfer", "bytes_per_s", "usb2"): (1e7, 4.5e7),  # below the 480 Mbit/s signalling rate
}


def _set(costs: dict[str, Any], path: tuple[str, ...], value: float) -> None:
    for key in path[:-1]:
        costs = costs[key]
    costs[path[-1]] = value


def fit_costs(references: Sequence[Reference] = REFERENCES, iterations: int = 4000,
              seed: int = 0) -> dict[str, Any]:
    """Fit the constants in :data:`FITTED` to ``references``; returns the full fitted cost dict.

    Minimises the sum of squared log ratios (estimated / published) with a bounded Nelder-Mead in
    log space. The graphs are walked once; only the pricing is repeated. Write the result into
    ``myriadx_costs.toml`` by hand, rounded, so that the constants stay reviewable.
    """
    base = load_costs()
    stacks = [_stack(model_work(ref.build(), base, ref.link)) for ref in references]
    target = np.log([ref.published_ms / 1e3 for ref in references])
    lo = np.log([b[0] for b in FITTED.values()])
    hi = np.log([b[1] for b in FITTED.values()])

    def costs_at(z: np.ndarray) -> dict[str, Any]:
        c = copy.deepcopy(base)
        for path, value in zip(FITTED, np.exp(np.clip(z, lo, hi))):
            _set(c, path, float(value))
        return c

    def loss(z: np.ndarray) -> float:
        c = costs_at(z)
        est = np.log([_price(s, c).sum() for s in stacks])
        return float(np.sum((est - target) ** 2) + np.sum(np.maximum(lo - z, 0) ** 2 + np.maximum(z - hi, 0) ** 2))

    start = np.array([math.log(_get(base, p)) for p in FITTED])
    best = _nelder_mead(loss, np.clip(start, lo, hi), iterations, np.random.default_rng(seed))
    return costs_at(best)


def _get(costs: dict[str, Any], path: tuple[str, ...]) -> float:
    for key in path:
        costs = costs[key]
    return float(costs)  # type: ignore[arg-type]


def _nelder_mead(f: Callable[[np.ndarray], float], x0: np.ndarray, iterations: int,
                 rng: np.random.Generator, restarts: int = 4) -> np.ndarray:
    """Plain Nelder-Mead with restarts (numpy only: the runtime does not depend on scipy)."""
    best = x0
    for _ in range(restarts):
        n = len(best)
        simplex = np.vstack([best] + [best + rng.normal(0, 0.5, n) for _ in range(n)])
        values = np.array([f(p) for p in simplex])
        for _ in range(iterations // restarts):
            order = np.argsort(values)
            simplex, values = simplex[order], values[order]
            centroid = simplex[:-1].mean(axis=0)
            reflected = centroid + (centroid - simplex[-1])
            fr = f(reflected)
            if fr < values[0]:
                expanded = centroid + 2 * (centroid - simplex[-1])
                fe = f(expanded)
                simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
            elif fr < values[-2]:
                simplex[-1], values[-1] = reflected, fr
            else:
                contracted = centroid + 0.5 * (simplex[-1] - centroid)
                fc = f(contracted)
                if fc < values[-1]:
                    simplex[-1], values[-1] = contracted, fc
                else:
                    simplex[1:] = simplex[0] + 0.5 * (simplex[1:] - simplex[0])
                    values[1:] = [f(p) for p in simplex[1:]]
        best = simplex[int(np.argmin(values))]
    return best
