"""Review 25: the model-fit check did not judge a scene in an engineering (local) CRS.

``runtime.fit.tile_gsd_m`` gave None ("unknown") for a ``LOCAL_CS`` grid, while
``runtime.measure.describe`` measured the same scene's vessels in metres from the grid's unit: a
10 ft grid fed to a sub-metre model passed the check without a word. Both now ask one rule
(``runtime.crs_plane.plane_of``). Real GeoTIFFs written and read through rasterio, their CRS as
rasterio reads it back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from runtime.fit import SceneFit, tile_fit_warnings, tile_gsd_m
from runtime.measure import units_of

SITE_FEET = ('LOCAL_CS["harbour grid, feet",UNIT["foot",0.3048,AUTHORITY["EPSG","9002"]],'
             'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
SITE_METRES = ('LOCAL_CS["harbour grid",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
               'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
SITE_DEGREES = 'LOCAL_CS["odd grid",UNIT["degree",0.0174532925199433],AXIS["X",EAST],AXIS["Y",NORTH]]'
#: A sub-metre SAR model's range
TRAINED_FOR = {"modality": "sar", "gsd_m": [0.5, 1.0], "counts": "uint8"}


def _geotiff(path: Path, wkt: str, pixel: float) -> tuple[tuple[float, ...], CRS]:
    """Write a small real GeoTIFF in ``wkt`` with ``pixel`` units per pixel; (transform, CRS) as read back."""
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 1, "dtype": "uint8",
               "crs": CRS.from_wkt(wkt), "transform": Affine(pixel, 0.0, 1000.0, 0.0, -pixel, 5000.0)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.zeros((1, 16, 16), np.uint8))
    with rasterio.open(path) as src:
        return tuple(src.transform)[:6], src.crs


@pytest.mark.parametrize("wkt, pixel, metres", [(SITE_FEET, 10.0, 3.048), (SITE_METRES, 0.8, 0.8)])
def test_an_engineering_grid_in_a_unit_of_length_has_metres_per_pixel(tmp_path: Path, wkt: str, pixel: float,
                                                                       metres: float) -> None:
    transform, crs = _geotiff(tmp_path / "scene.tif", wkt, pixel)
    assert not crs.is_projected and not crs.is_geographic  # the case that was "unknown"
    assert units_of(crs) == "m"  # its vessels are measured in metres ...
    assert tile_gsd_m(transform, crs) == pytest.approx(metres)  # ... and its pixels are metres too


def test_a_feet_grid_outside_the_models_range_is_reported(tmp_path: Path) -> None:
    transform, crs = _geotiff(tmp_path / "feet.tif", SITE_FEET, 10.0)
    warnings = tile_fit_warnings(TRAINED_FOR, "sar", transform, crs, "uint8")
    assert warnings == ["ground sample distance [3.048] m is outside the 0.5-1.0 m the model was trained on"]
    header = {"scene_id": "harbour", "modality": "sar", "transform": list(transform), "dtype": "uint8"}
    said, new = SceneFit().check("m1", TRAINED_FOR, header, crs)  # the runtime's per-tile check
    assert said == warnings and new
    transform, crs = _geotiff(tmp_path / "metres.tif", SITE_METRES, 0.8)
    assert tile_fit_warnings(TRAINED_FOR, "sar", transform, crs, "uint8") == []  # within range: no word


def test_an_engineering_grid_in_degrees_stays_unjudged(tmp_path: Path) -> None:
    """A grid whose unit is no length is refused for measuring; it has no metres per pixel either."""
    transform, crs = _geotiff(tmp_path / "degrees.tif", SITE_DEGREES, 0.001)
    assert units_of(crs) == "px"
    assert tile_gsd_m(transform, crs) is None
