"""Review: a vessel of a Mercator tile (EPSG:3857, 3395) is measured in ground metres. A Mercator map
metre is a ground metre only on the equator; at 54 N a 150 m ship came down 256 m long and 51 m
wide, while ``runtime.fit.tile_gsd_m`` judged the same scene by its ground metres."""

from __future__ import annotations

import pytest
import rasterio.warp
import shapely
from rasterio.crs import CRS
from shapely.affinity import rotate
from shapely.geometry import mapping, shape

from runtime.measure import describe

UTM = CRS.from_epsg(32633)


@pytest.mark.parametrize("code", ["EPSG:3857", "EPSG:3395", "+proj=merc +lat_ts=30 +datum=WGS84 +units=us-ft"])
@pytest.mark.parametrize("northing", [1000.0, 6_000_000.0])  # the equator, 54 N
def test_a_mercator_vessel_is_measured_in_ground_metres(code: str, northing: float) -> None:
    ship = rotate(shapely.box(500000, northing, 500150, northing + 30), 30, origin="centroid")  # heading 60
    crs = CRS.from_user_input(code)
    got = describe(shape(rasterio.warp.transform_geom(UTM, crs, mapping(ship))), crs)
    # UTM's grid is 0.9996 of the ground on its central meridian
    assert got["length_m"] == pytest.approx(150 / 0.9996, rel=2e-3)
    assert got["width_m"] == pytest.approx(30 / 0.9996, rel=5e-3)
    assert got["heading_deg"] == pytest.approx(60.0, abs=0.3)
    assert got["units"] == "m"


def test_other_projections_are_taken_at_their_word() -> None:
    got = describe(shapely.box(0, 0, 100, 10), CRS.from_epsg(2263))  # US feet
    assert got["length_m"] == pytest.approx(30.48006, rel=1e-6)
