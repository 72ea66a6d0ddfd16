"""Flight models that take tiles in their own bytes: u8 or u16 input, normalised inside the IR.

Why: a tile crosses the link (and the Myriad X's USB) in the sensor's counts. An f32 input costs
four bytes per value on the wire and a host pass per tile to convert and normalise; a u8 input costs
one byte and the conversion runs where the model runs. It is also a numerics question: the device
then converts counts to FP16 itself (u16 counts above 2048 are not exact in FP16, above 65504 not
representable), and the normalisation runs in FP16 on the device; the twin models both
(:mod:`runtime.emulate`, input conversion under the profile's ``conversion_rounding``).

The IR's new head is explicit opset1 ops, readable by the 2022.3 toolkit:
``Parameter(u8|u16) -> Convert(f32) -> Subtract(mean) -> Multiply(1/std)`` per band, the same
arithmetic as the host's :class:`runtime.preprocess.Preprocessor` (subtract, then multiply by the
reciprocal, in f32). Torch-free on purpose: a bundle can be retyped on either OpenVINO API.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from runtime import ov_api
from runtime.bundle import (INPUT_DTYPES, Bundle, BundleError, extra_files, read_bundle, rewritable_manifest,
                            write_bundle)

_OV_TYPES = {"uint8": ov_api.Type.u8, "uint16": ov_api.Type.u16}


def check_input_dtype(dtype: str, what: str = "input dtype") -> None:
    """A ValueError naming ``what`` and the valid types unless ``dtype`` is one of them."""
    if dtype not in INPUT_DTYPES:
        raise ValueError(f"{what} {dtype!r}; valid: {list(INPUT_DTYPES)}")


def normalise_in_ir(model: Any, dtype: str, mean: list[float], std: list[float]) -> Any:
    """A copy of ``model`` whose input is ``dtype`` counts, converted and normalised inside.

    ``model`` takes the host-normalised f32 tile; the copy computes ``(counts - mean) * (1/std)``
    per band itself. Raises ValueError for a dtype other than uint8 or uint16.
    """
    if dtype not in _OV_TYPES:
        raise ValueError(f"an IR can take its input as {sorted(_OV_TYPES)}, not {dtype!r}")
    model = model.clone()
    (old,) = model.get_parameters()
    bands = int(old.get_partial_shape()[1].get_length())
    if len(mean) != bands or len(std) != bands:
        raise ValueError(f"mean and std need one value per band ({bands})")
    ops = ov_api.opset1
    new = ops.parameter(old.get_partial_shape(), _OV_TYPES[dtype], name=old.get_friendly_name())
    new.output(0).get_tensor().set_names(set(old.output(0).get_tensor().get_names()))
    shape = (1, bands, 1, 1)

    def head() -> Any:
        counts = ops.convert(new, "f32")
        centred = ops.subtract(counts, ops.constant(np.asarray(mean, np.float32).reshape(shape)))
        return ops.multiply(centred, ops.constant((1.0 / np.asarray(std, np.float32)).reshape(shape)))

    # u16: one head per op that read the tile. OpenVINO 2022.3's CPU plugin, given one head of a u16
    # one-band tile feeding two convolutions (a residual block 0), runs one of them on the raw counts
    # (tests/ov2022/test_openvino_2022.py). u8: one head shared, as the graph reads: measured right on
    # that plugin with one and three bands, and each extra head is work on the device (models/sar's
    # residual block 0: 1.7 ms of the cost model's estimate).
    shared = head() if dtype == "uint8" else None
    for target in list(old.output(0).get_target_inputs()):
        target.replace_source_output((shared if shared is not None else head()).output(0))
    out = ov_api.Model(model.get_results(), [new], model.get_friendly_name())
    out.validate_nodes_and_infer_types()
    return out


def pad_counts(norm: dict[str, Any], dtype: str) -> list[int]:
    """The counts an edge tile is padded with: each band's mean, so that padding normalises to
    about 0 as it does when the host pads after normalising (about: a count is whole, a mean is not;
    :func:`retype_bundle` says what that changes)."""
    top = np.iinfo(dtype).max
    return [int(np.clip(round(float(m)), 0, top)) for m in norm["mean"]]


def input_manifest(host_input: dict[str, Any], dtype: str) -> dict[str, Any]:
    """The manifest ``input`` of a model retyped from one normalised on the host."""
    check_input_dtype(dtype)
    norm = host_input["normalization"]
    if dtype == "float32":
        return host_input
    if norm["where"] != "host":
        raise ValueError(f"input normalised in the {norm['where']!r}; only a host-normalised model can be retyped")
    if norm.get("scale", "linear") != "linear":
        raise ValueError(f"input normalised on the {norm['scale']!r} scale, which only the host applies; "
                         "valid input types for it: ['float32']")
    top = np.iinfo(dtype).max
    if not all(0 <= float(m) <= top for m in norm["mean"]):
        # the mean of counts a dtype cannot hold: no tile of that type is the model's data, and its
        # padding (the mean, clipped) would not normalise to about 0
        valid = ["float32", *(t for t in _OV_TYPES if all(0 <= float(m) <= np.iinfo(t).max for m in norm["mean"]))]
        raise ValueError(f"input normalised around mean counts {list(norm['mean'])}, outside {dtype}'s 0 to {top}: "
                         f"the model was not trained on {dtype} counts; valid input types for it: {valid}")
    return {**host_input, "dtype": dtype,
            "normalization": {"where": "ir", "mean": list(norm["mean"]), "std": list(norm["std"]),
                              "pad": pad_counts(norm, dtype)}}


def retype_ir(xml: bytes, bin_: bytes, dtype: str, norm: dict[str, Any]) -> tuple[bytes, bytes]:
    """IR bytes of a host-normalised model -> IR bytes taking ``dtype`` counts (weights unchanged)."""
    core = ov_api.Core()
    model = ov_api.read_ir(xml, bin_, core)
    model = normalise_in_ir(model, dtype, list(norm["mean"]), list(norm["std"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.xml"
        ov_api.save_ir(model, path)
        return path.read_bytes(), path.with_suffix(".bin").read_bytes()


def with_input_dtype(xml: bytes, bin_: bytes, manifest: dict[str, Any], dtype: str) -> tuple[bytes, bytes, dict[str, Any]]:
    """An exported model (IR bytes and its manifest, normalised on the host) as one taking
    ``dtype`` counts: what the baseline and the search write when ``[export] input_dtype`` asks
    for it. ``float32`` returns the inputs unchanged."""
    check_input_dtype(dtype)
    if dtype == "float32":
        return xml, bin_, manifest
    xml, bin_ = retype_ir(xml, bin_, dtype, manifest["input"]["normalization"])
    return xml, bin_, {**manifest, "input": input_manifest(manifest["input"], dtype)}


def retype_bundle(src: str | Path | Bundle, out_dir: str | Path, dtype: str, command: str | None = None) -> Bundle:
    """Write a copy of bundle ``src`` whose IR takes ``dtype`` counts; same weights, same outputs on
    full tiles up to the f32 rounding of the normalisation. Not on an edge tile: its padding is whole
    counts (:func:`pad_counts`, each band's mean rounded), which normalise to about 0, not to 0 as
    the host's padding does, and a network that averages over the whole tile (a squeeze-excitation
    block) carries that everywhere (models/sar retyped to uint8: probabilities up to 0.08 apart on
    SSDD edge tiles, 6e-7 on full ones, by a script of the fifteenth session's review, not kept).

    The manifest keeps the source's metrics (measured with its f32 input) and says so under
    ``derived_from``. Raises ValueError for an unknown dtype or float32, a dtype that cannot hold the
    normalisation's mean counts, or an ``out_dir`` that is the source bundle's own directory (the
    float32 model would be lost), BundleError for a bundle already normalised in its IR.
    """
    check_input_dtype(dtype)
    if not isinstance(src, Bundle) and Path(out_dir).resolve() == Path(src).resolve():
        raise ValueError(f"--out {out_dir} is the bundle being retyped: write the retyped copy elsewhere")
    bundle = src if isinstance(src, Bundle) else read_bundle(src)
    if dtype == "float32":
        raise ValueError(f"retyping to float32 changes nothing; valid: {sorted(_OV_TYPES)}")
    if bundle.manifest["input"].get("dtype", "float32") != "float32":
        raise BundleError(f"bundle {bundle.name!r} takes {bundle.manifest['input'].get('dtype')}; "
                          f"only a float32-input model can be retyped (to {sorted(_OV_TYPES)})")
    manifest = rewritable_manifest(bundle)
    norm = manifest["input"]["normalization"]
    if norm["where"] != "host":
        raise BundleError("only a model normalised on the host can be retyped")
    retyped_input = input_manifest(manifest["input"], dtype)  # refuses before any work
    xml, bin_ = retype_ir(bundle.files["model.xml"], bundle.files["model.bin"], dtype, norm)
    manifest["input"] = retyped_input
    manifest["derived_from"] = {"sha256": bundle.id, "name": bundle.name,
                                "change": f"input retyped float32 -> {dtype}, normalisation moved into the IR",
                                "command": command or f"search.input_types.retype_bundle(..., {dtype!r})"}
    # The golden tile stays: the same counts, and the same output up to the f32 rounding of the
    # normalisation, which its tolerances absorb (the acceptance test checks it on every load).
    return write_bundle(Path(out_dir), xml, bin_, manifest, extra_files(bundle))
