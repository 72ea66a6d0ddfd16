"""Review 24: vessels in a CRS neither projected nor geographic were measured as pixels.

``runtime.measure.describe`` fell back to the transform's own units and ``units: "px"`` for every other
CRS: an engineering grid (``LOCAL_CS``, a site's own grid in feet or metres) gave its lengths in feet
called pixels, and a geocentric CRS (EPSG:4978, X, Y, Z from the Earth's centre, in which no 2-D
image has a plane) was served as if it were a pixel grid. Now an engineering grid in a unit of length
is measured in metres, and a CRS no vessel can be measured in is refused, by the runtime before
inference (``bad_header``, whether or not the tile holds a vessel) and by ``runtime infer``. Real
rasterio CRS objects, a real runtime and real GeoTIFFs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS

from flightsim.sources import units_of
from runtime import offline
from runtime.measure import describe
from runtime.server import Runtime
from tests.conftest import make_brightness_bundle
from tests.runtime.test_unusual_tiles import _close_grounds, _frames, _send, _ship  # noqa: F401 (a fixture)

SITE_FEET = ('LOCAL_CS["harbour grid, feet",UNIT["foot",0.3048,AUTHORITY["EPSG","9002"]],'
             'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
SITE_METRES = ('LOCAL_CS["harbour grid",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
               'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
SITE_DEGREES = 'LOCAL_CS["odd grid",UNIT["degree",0.0174532925199433],AXIS["X",EAST],AXIS["Y",NORTH]]'
#: 100 x 20 units, its long side east-west
BOX = shapely.box(1000.0, 2000.0, 1100.0, 2020.0)


@pytest.mark.parametrize("wkt, metres_per_unit", [(SITE_FEET, 0.3048), (SITE_METRES, 1.0)])
def test_an_engineering_grid_in_a_unit_of_length_is_measured_in_metres(wkt: str, metres_per_unit: float) -> None:
    crs = CRS.from_wkt(wkt)
    assert not crs.is_projected and not crs.is_geographic  # the case that fell back to pixels
    props = describe(BOX, crs)
    assert props["units"] == "m"
    assert props["length_m"] == pytest.approx(100.0 * metres_per_unit)
    assert props["width_m"] == pytest.approx(20.0 * metres_per_unit)
    assert props["area_m2"] == pytest.approx(2000.0 * metres_per_unit ** 2)
    assert props["heading_deg"] == pytest.approx(90.0)  # from the grid's +y: east-west
    assert props["centroid"] == [1050.0, 2010.0]  # positions stay in the grid's own units
    assert units_of(crs) == "m"  # the rig's truth is said in the units the runtime measures in


@pytest.mark.parametrize("crs, why", [("EPSG:4978", "geocentric"), (SITE_DEGREES, "unit \\(degree\\) is not a length"),
                                      ("EPSG:5714", "VERT_CS")])
def test_a_crs_with_no_plane_of_lengths_is_refused_by_name(crs: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"cannot measure a vessel in .*{why}"):
        describe(BOX, CRS.from_user_input(crs))


@pytest.mark.parametrize("crs", ["EPSG:4978", "EPSG:5714"])
def test_the_runtime_refuses_a_tile_in_a_crs_with_no_plane_whether_or_not_it_holds_vessels(
        running_runtime: Runtime, crs: str) -> None:
    """It served them as pixel grids: ok, with vessels said to be in "px"."""
    transform = [10.0, 0.0, 4_000_000.0, 0.0, -10.0, 700_000.0]
    answers = []
    for name, pixels in (("vessel", _ship()), ("empty", np.zeros((3, 64, 64), np.uint8))):
        ack, result = _send(running_runtime, _frames(pixels, tile_id=f"{crs}/{name}", crs=crs, transform=transform))
        answers.append((ack["status"], ack["reason"], result["status"], result["reason"]))
        assert "no plane" in result["detail"] or "neither geographic" in result["detail"], result
    assert answers == [("rejected", "bad_header", "rejected", "bad_header")] * 2, answers


def test_the_runtime_measures_an_engineering_tile_in_metres(running_runtime: Runtime) -> None:
    transform = [3.0, 0.0, 1000.0, 0.0, -3.0, 5000.0]  # 3 ft pixels
    _, result = _send(running_runtime, _frames(_ship(), tile_id="feet", crs=SITE_FEET, transform=transform))
    assert result["status"] == "ok", result
    [vessel] = result["detections"]["features"]
    assert vessel["properties"]["units"] == "m"
    # the 40 x 10 pixel ship is about 120 ft long: 36.6 m, not 120 "px" (the outline follows the
    # probability's 0.5 contour, so a pixel or so either way)
    assert vessel["properties"]["length_m"] == pytest.approx(40 * 3 * 0.3048, rel=0.05)


def test_infer_refuses_a_geocentric_geotiff_as_the_runtime_does(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "b", size=64)
    pixels = np.full((3, 64, 64), 15, np.uint8)
    path = tmp_path / "ecef.tif"
    with rasterio.open(path, "w", driver="GTiff", height=64, width=64, count=3, dtype="uint8",
                       crs=CRS.from_epsg(4978), transform=Affine(10.0, 0, 4_000_000.0, 0, -10.0, 700_000.0)) as dst:
        dst.write(pixels)
    with pytest.raises(ValueError, match="the runtime rejects its tiles: bad_header: .*geocentric"):
        offline.infer_file(tmp_path / "b", path, "CPU", {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8})
