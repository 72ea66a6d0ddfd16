"""A folder of sea/land masks (``hil run --land-masks DIR``) in the PNG flavours a mask comes in.

Land is black (0, as SSDD's ``sealand/``) whatever the PNG's colour type: a palette PNG's values are
indices into its colour table, not grey levels, and were taken for grey levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from PIL import Image
from rasterio.crs import CRS

from flightsim.sources.base import Sample
from hil.rig import sea_mask


def _sample() -> Sample:
    """A 4 x 6 UTM sample named ``harbour``: its mask is ``harbour.png``."""
    return Sample("harbour", 4, 6, Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 5000000.0), CRS.from_epsg(32631),
                  ["b"], "uint8")


def _grey() -> np.ndarray:
    """Sea (255, white) on the west half, land (0, black) on the east half."""
    grey = np.zeros((4, 6), np.uint8)
    grey[:, :3] = 255
    return grey


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "RGBA", "1"])
def test_a_mask_s_white_is_sea_whatever_its_png_colour_type(tmp_path: Path, mode: str) -> None:
    """The same black-and-white mask saved as grey, palette (PIL's adaptive palette puts white at index 0,
    black at 1: read as grey, the sea was land and the land sea), RGB, RGBA and 1-bit: one sea mask."""
    image = Image.fromarray(_grey())
    if mode == "P":
        image = image.convert("P", palette=Image.ADAPTIVE, colors=2)
        assert np.array(image)[0, 0] == 0  # white at index 0: the case that was inverted
    elif mode == "1":
        image = Image.fromarray(_grey() > 0)
    else:
        image = image.convert(mode)
    image.save(tmp_path / "harbour.png")
    sea = sea_mask(_sample(), tmp_path)
    assert sea is not None
    assert sea[:, :3].all() and not sea[:, 3:].any()


def test_a_coloured_mask_s_black_is_land(tmp_path: Path) -> None:
    """A colour mask with blue sea and black land: its red band is 0 everywhere, and it was all land."""
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :3, 2] = 255  # blue sea on the west half
    Image.fromarray(rgb).save(tmp_path / "harbour.png")
    sea = sea_mask(_sample(), tmp_path)
    assert sea is not None
    assert sea[:, :3].all() and not sea[:, 3:].any()
