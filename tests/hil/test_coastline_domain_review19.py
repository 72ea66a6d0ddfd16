"""Review 19: a coastline looked up for pixels that have no place on the Earth.

A geostationary full disk (``+proj=geos``) has corners beyond the Earth's rim: GDAL refused the whole
reprojection ("Point outside of projection domain") and ``hil run --land-masks gshhg`` failed at its
scoring, after every tile. A geographic grid that runs past a pole gave roaring-landmask a latitude
past 90, on which it panics (a ``PanicException``, a BaseException that no ``except Exception`` takes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine

from flightsim.sources.base import Sample
from hil.coastline import coastline_sea_mask

pytest.importorskip("roaring_landmask")

GEOS = rasterio.crs.CRS.from_string("+proj=geos +h=35785831 +lon_0=0 +sweep=y +datum=WGS84 +units=m")
#: 64 x 64 pixels over the whole disk (its rim is at about 5.43e6 m from the centre).
DISK = Affine(5.6e6 / 32, 0.0, -5.6e6, 0.0, -5.6e6 / 32, 5.6e6)


def _pixel(lon: float, lat: float) -> tuple[int, int]:
    (x,), (y,) = rasterio.warp.transform("EPSG:4326", GEOS, [lon], [lat])
    col, row = ~DISK * (x, y)
    return int(row), int(col)


def test_a_geostationary_disk_is_looked_up_where_it_is_on_the_earth() -> None:
    sample = Sample("disk", 64, 64, DISK, GEOS, ["b"], "uint8")
    sea = coastline_sea_mask(sample, "gshhg")
    assert sea is not None and sea.shape == (64, 64)
    assert sea[0, 0] and sea[0, -1] and sea[-1, 0] and sea[-1, -1]  # space: no land to mask
    assert not sea[_pixel(22.0, 2.0)]  # the Congo basin
    assert not sea[_pixel(25.0, 25.0)]  # the Sahara
    assert sea[_pixel(-25.0, -20.0)]  # the South Atlantic


def test_a_geographic_grid_past_the_pole_does_not_panic() -> None:
    # 10 degree pixels from 100 N: the first row's centres at 95 N are nowhere; the rest as usual
    sample = Sample("north", 8, 36, Affine(10.0, 0.0, -180.0, 0.0, -10.0, 100.0), rasterio.crs.CRS.from_epsg(4326),
                    ["b"], "uint8")
    sea = coastline_sea_mask(sample, "gshhg")
    assert sea is not None and sea.shape == (8, 36)
    assert sea[0].all()
    assert not sea[4, 10]  # 45 N, 75 W: Quebec
    assert sea[5, 2]  # 35 N, 155 W: the Pacific


def test_a_sample_none_of_whose_pixels_is_on_the_earth_is_not_masked() -> None:
    space = Sample("space", 8, 8, Affine(1e5, 0.0, 6e6, 0.0, -1e5, 6.8e6), GEOS, ["b"], "uint8")
    assert coastline_sea_mask(space, "gshhg") is None


@pytest.mark.slow
def test_a_run_on_a_geostationary_disk_is_scored_with_the_coastline(tmp_path: Path) -> None:
    """The whole run, not only the mask: it was lost at its scoring, after every tile was processed."""
    import hil
    from tests.conftest import make_brightness_bundle

    make_brightness_bundle(tmp_path / "b", size=64)
    pixels = np.full((3, 64, 64), 20, dtype=np.uint8)
    row, col = _pixel(-25.0, -20.0)  # a bright "ship" in the South Atlantic
    pixels[:, row:row + 2, col:col + 3] = 250
    scene = tmp_path / "disk.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs=GEOS,
                       transform=DISK) as dst:
        dst.write(pixels)
    report = hil.run(scene, tmp_path / "b", tmp_path / "r", land_masks="gshhg").report
    assert report["land_masked"] == {"source": "gshhg", "samples_with_a_mask": 1, "detections_dropped": 0}
    assert report["n_detections"] == 1


def test_a_geographic_grid_past_the_antimeridian_is_looked_up_where_it_is() -> None:
    """Longitudes past -180 (a scene of Fiji written from -182) were taken for the open sea: its land
    was left unmasked; past +180 they were read right. (Review 23.)"""
    west = Sample("fiji-west", 1, 1, Affine(0.01, 0.0, -182.58, 0.0, -0.01, -17.79), rasterio.crs.CRS.from_epsg(4326),
                  ["b"], "uint8")
    east = Sample("fiji-east", 1, 1, Affine(0.01, 0.0, 177.42, 0.0, -0.01, -17.79), rasterio.crs.CRS.from_epsg(4326),
                  ["b"], "uint8")
    assert not coastline_sea_mask(east, "gshhg")[0, 0]  # Viti Levu, 177.4 E 17.8 S: land
    assert not coastline_sea_mask(west, "gshhg")[0, 0]  # the same place, 360 degrees west
