"""A searched network -> FP16 OpenVINO IR that the Myriad X toolchain reads, with the target check.

:func:`search.export.to_ir` (the baseline's exporter) calls this one; it does what searched networks need:

* torch's bilinear upsampling converts to Interpolate-11, which the OpenVINO 2022.3 MYRIAD toolkit
  rejects (opset <= 10). :func:`downgrade_interpolates` rebuilds each as the Interpolate-4 with the
  same attributes (the op the 2022.3 toolchain reads), so the IR says exactly what torch computed
  (half_pixel) and the device's remapping of it is the twin's business, as in flight;
* :func:`runtime.check.check_model` runs on the result; a candidate whose IR has an ``error``
  finding cannot run on the VPU and is refused (:class:`TargetCheckError`).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from runtime import ov_api
from runtime.check import Finding, check_model
from search.export import INPUT_NAME, OUTPUT_NAME, check_opsets


ops1, ops10 = ov_api.opset(1), ov_api.opset(10)


class TargetCheckError(ValueError):
    """The exported IR has ops the target cannot run (``runtime.check`` errors)."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__("; ".join(f"{f.op_type} {f.op_name}: {f.message}" for f in findings))


def downgrade_interpolates(model: ov_api.Model) -> int:
    """Replace every Interpolate-11 of ``model`` by an equivalent Interpolate-4, in place.

    Returns how many were replaced. Interpolate-11 in ``scales`` mode takes (data, scales, axes);
    Interpolate-4 takes (data, sizes, scales, axes): the sizes are filled from the static shape.
    """
    replaced = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Interpolate" or not str(node.get_type_info().version_id).endswith("11"):
            continue
        attrs = node.get_attributes()
        data = node.input_value(0)
        rank = data.get_partial_shape().rank.get_length()
        axes = node.input_value(2) if node.get_input_size() > 2 else ops1.constant(np.arange(rank, dtype=np.int64)).output(0)
        axes_list = [int(a) for a in np.asarray(axes.get_node().get_data()).reshape(-1)]
        out_shape = [int(d) for d in node.output(0).get_shape()]
        in_shape = [int(d) for d in data.get_shape()]
        sizes = ops1.constant(np.array([out_shape[a] for a in axes_list], dtype=np.int64))
        scales = ops1.constant(np.array([out_shape[a] / in_shape[a] for a in axes_list], dtype=np.float32))
        # "sizes": the int64 sizes keep the output shape static after the FP16 compression of the
        # IR, which turns the float scales into an f16 Constant + Convert that shape inference
        # does not fold when the IR is read back (found: [1,8,?,?] on reading, refused by the runtime).
        new = ops10.interpolate(
            data, sizes, scales, attrs["mode"], "sizes",
            pads_begin=list(attrs.get("pads_begin", [])), pads_end=list(attrs.get("pads_end", [])),
            coordinate_transformation_mode=attrs["coordinate_transformation_mode"],
            nearest_mode=attrs.get("nearest_mode", "round_prefer_floor"),
            antialias=bool(attrs.get("antialias", False)), cube_coeff=float(attrs.get("cube_coeff", -0.75)),
            axes=axes,
        )
        new.set_friendly_name(node.get_friendly_name())
        for target in list(node.output(0).get_target_inputs()):
            target.replace_source_output(new.output(0))
        replaced += 1
    if replaced:
        model.validate_nodes_and_infer_types()
    return replaced


def to_ir(model: nn.Module, shape: tuple[int, int, int, int]) -> tuple[bytes, bytes]:
    """Convert ``model`` (in eval mode) to an IR with FP16 weights; returns (xml, bin) bytes.

    The baseline's exporter is the search's (:func:`export_ir`) with its defaults, so the flight
    model passes the same Myriad X check (``runtime.check``) as every candidate.
    """
    xml, bin_, _ = export_ir(model, shape)
    return xml, bin_


def export_ir(model: nn.Module, shape: tuple[int, int, int, int], target: str = "MYRIAD",
              fp16_weights: bool = True) -> tuple[bytes, bytes, list[Finding]]:
    """``model`` (put in eval mode, FP32 forward) as FP16 IR bytes and the target check's findings.

    ``fp16_weights=False`` keeps f32 weights: only for the ablation's FP32-on-host reference.

    Raises:
        TargetCheckError: if the target check finds an error (the VPU cannot run the IR).
        ValueError: if an op newer than opset 10 is left.
    """
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        ovm = ov_api.convert_model(model, example_input=torch.zeros(shape), input=[list(shape)])
    downgrade_interpolates(ovm)
    ovm.inputs[0].get_tensor().set_names({INPUT_NAME})
    ovm.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    with tempfile.TemporaryDirectory() as tmp:
        xml_path = Path(tmp) / "model.xml"
        ov_api.save_model(ovm, xml_path, compress_to_fp16=fp16_weights)
        xml, bin_ = xml_path.read_bytes(), xml_path.with_suffix(".bin").read_bytes()
        # Checked as the runtime will read it: the IR file, not the in-memory graph.
        findings = check_model(ov_api.Core().read_model(str(xml_path)), target)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise TargetCheckError(errors)
    check_opsets(xml)
    return xml, bin_, findings
