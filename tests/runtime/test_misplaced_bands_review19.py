"""A source naming some of the model's bands at other positions is not fed as is (``runtime.bands``'
rule 2): near-infrared, red, green into a red, green, blue model put the red into the model's green.
The ground's rule (``adapt_bands``, hil and ``runtime infer``) and the payload's (``Preprocessor``)
refuse it alike."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.bands import adapt_bands, misplaced_bands
from runtime.preprocess import Preprocessor
from runtime.protocol import Reason, TileRejected

MODEL = ["red", "green", "blue"]
INPUT = {"bands": MODEL, "dtype": "float32", "normalization": {"where": "host", "mean": [0.0] * 3, "std": [1.0] * 3}}


def test_the_ground_refuses_model_bands_at_other_positions() -> None:
    assert misplaced_bands(["nir", "red", "green"], MODEL) == ["red", "green"]
    with pytest.raises(ValueError, match=r"names the model's \['red', 'green'\] at other positions.*give --bands"):
        adapt_bands(["nir", "red", "green"], MODEL)
    index, note = adapt_bands(["nir", "red", "green"], MODEL, strict=False)  # the rig without --bands
    assert index is None and note.startswith("not adapted")
    assert adapt_bands(["nir", "red", "green"], MODEL, select=[2, 3, 1])[0] == [1, 2, 0]


@pytest.mark.parametrize("source", [["band1", "band2", "band3"], ["red", "green", "nir"], ["B4", "B3", "B2"],
                                    ["Red", "Green", "Blue"]])
def test_names_that_put_no_model_band_elsewhere_still_go_as_they_are(source: list[str]) -> None:
    assert adapt_bands(source, MODEL)[0] is None


def test_the_payload_refuses_a_tile_naming_model_bands_at_other_positions() -> None:
    prep = Preprocessor(INPUT, (1, 3, 8, 8))
    pixels = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(TileRejected) as err:
        prep(pixels, {"bands": ["nir", "red", "green"]})
    assert err.value.reason is Reason.BAD_SHAPE and "would feed other model bands" in err.value.detail
    with pytest.raises(TileRejected, match=""):  # the model's own bands in another order, as before
        prep(pixels, {"bands": ["blue", "green", "red"]})
    for fine in (["red", "green", "nir"], ["band1", "band2", "band3"], MODEL, None):
        prep(pixels, {"bands": fine})
