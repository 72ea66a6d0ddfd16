"""The acceptance test of a flight model before it may serve: what a payload checks on board so that a
model that loads cleanly but is wrong is refused, and the old one keeps serving.
"""

from __future__ import annotations

import numpy as np

from runtime.bundle import Bundle, BundleError
from runtime.device import InferenceAdapter
from runtime.golden import check_golden
from runtime.preprocess import Preprocessor


def acceptance_test(bundle: Bundle, adapter: InferenceAdapter) -> Preprocessor:
    """Refuse a model that loads but cannot serve: the manifest must describe the IR (input
    shape and type, output shape), the IR must give finite probabilities for an all-zero
    tile and for a tile of counts 0..255 (a range uint8 and uint16 tiles both hold; a model
    that is NaN on real data but not on zeros was installed before this check), and a bundle
    with a golden tile must reproduce its expected output here (runtime.golden). Returns the
    model's preprocessor."""
    declared = tuple(bundle.manifest["input"]["shape"])
    if declared != tuple(adapter.input_shape):
        raise BundleError(f"manifest input.shape {list(declared)} does not match the IR's input "
                          f"{list(adapter.input_shape)}")
    declared_type = bundle.manifest["input"].get("dtype", "float32")
    if declared_type != adapter.input_dtype:
        raise BundleError(f"manifest input.dtype {declared_type!r} does not match the IR's input "
                          f"element type {adapter.input_dtype!r}")
    preprocess = Preprocessor(bundle.manifest["input"], adapter.input_shape)
    _, bands, h, w = adapter.input_shape
    top = 255
    ramp = np.broadcast_to(np.linspace(0, top, h * w).reshape(h, w), (bands, h, w)).astype(np.uint8)
    expected = (1, 1, h, w)
    declared_out = bundle.manifest["output"].get("shape")
    if declared_out is not None and tuple(declared_out) != expected:
        raise BundleError(f"manifest output.shape {declared_out} is not the (1, 1, H, W) the runtime reads")
    for name, batch in (("an all-zero tile", np.zeros(adapter.input_shape, adapter.input_dtype)),
                        (f"a tile of counts 0..{top}", preprocess(ramp, {})[0])):
        output = adapter.infer(batch)
        if output.shape != expected:
            raise BundleError(f"test inference on {name} gave shape {output.shape}, expected {expected}")
        if not np.isfinite(output).all():
            raise BundleError(f"test inference on {name} gave non-finite values")
    check_golden(bundle, adapter, preprocess)  # the ground's known tile, reproduced on this device
    return preprocess
