"""Torch network -> FP16 OpenVINO IR, checked against the opsets the Myriad X toolkit accepts.

The IR must load in the OpenVINO 2022.3 MYRIAD toolkit, which accepts ops from opset 10 or older;
:func:`ir_opsets` reads the opset of every layer from the XML so the exporter (and the tests) can
refuse anything newer instead of finding out on the device.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from runtime import ov_api
from runtime.check import MAX_OPSET  # the Myriad X toolkit's limit: one owner, the target check

INPUT_NAME = "image"
OUTPUT_NAME = "vessel_probability"


def ir_opsets(xml: bytes) -> list[str]:
    """The sorted distinct ``version`` attributes of the IR's layers, e.g. ``["opset1", "opset3"]``."""
    root = ET.fromstring(xml)
    return sorted({layer.get("version", "") for layer in root.iter("layer")})


def check_opsets(xml: bytes, max_opset: int = MAX_OPSET) -> None:
    """Raise ValueError if any layer comes from an opset newer than ``max_opset``."""
    too_new = []
    for version in ir_opsets(xml):
        match = re.fullmatch(r"opset(\d+)", version)
        if match is None or int(match.group(1)) > max_opset:
            too_new.append(version)
    if too_new:
        raise ValueError(f"IR uses {too_new}; valid: opset1..opset{max_opset}")


def compile_ir(xml: bytes, bin_: bytes, device: str = "CPU") -> ov_api.CompiledModel:
    """Compile IR bytes; on CPU in f32 so the numbers are the FP16 weights' and not bf16's."""
    core = ov_api.Core()
    ovm = ov_api.read_ir(xml, bin_, core)
    config = {"INFERENCE_PRECISION_HINT": "f32"} if device == "CPU" else {}
    return core.compile_model(ovm, device, config)

