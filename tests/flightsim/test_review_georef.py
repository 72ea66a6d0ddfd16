"""Review: a user's --gsd over a GeoTIFF's own geotransform, and the tiles it gives."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from flightsim.sources.base import Georef, read_image


@pytest.mark.parametrize("own", [
    Affine(3, 0, 500000, 0, 3, 4200000),                                 # south-up: rows run north
    Affine(3, 0, 500000, 0, -3, 4200000) * Affine.rotation(30),          # turned by 30 degrees
    Affine(0, 3, 500000, 3, 0, 4200000),                                 # rows and columns swapped
])
def test_a_gsd_given_for_a_georeferenced_file_rescales_it_without_turning_or_flipping_it(
        tmp_path: Path, own: Affine) -> None:
    """``--gsd`` overrides the metres per pixel and keeps the rest of what the file says
    (Georef: "each part not given keeps what the image says"): the orientation of the grid (which
    way rows and columns run on the ground) is such a part. Rebuilding the transform north-up
    mirrors a south-up scene and unturns a rotated one: every vessel lands elsewhere, with another
    heading."""
    path = tmp_path / "s.tif"
    with rasterio.open(path, "w", driver="GTiff", height=32, width=48, count=1, dtype="uint8",
                       crs="EPSG:32631", transform=own) as dst:
        dst.write(np.zeros((1, 32, 48), np.uint8))
    sample = read_image(path, Georef(gsd=2.0))
    t = sample.transform
    k = 2.0 / 3.0
    assert (t.a, t.b, t.d, t.e) == pytest.approx((own.a * k, own.b * k, own.d * k, own.e * k))
    assert (t.c, t.f) == pytest.approx((own.c, own.f))  # the origin stays the file's
    assert math.sqrt(abs(t.determinant)) == pytest.approx(2.0)
