"""A Mercator map unit is a ground metre only at the equator (at latitude 54 N a Web Mercator "metre"
is 0.59 m on the ground): a 10 m Sentinel-2 scene exported in EPSG:3857 there has pixels of 17 map
units, and was judged 17 m, outside a 10 m model's range (``scene_does_not_fit``, or refused with
``--strict-fit``), while a 30 m scene passed a 10-20 m model."""

from __future__ import annotations

import math

import pytest
from rasterio.crs import CRS
from rasterio.warp import transform as warp

from runtime.fit import fit_warnings, tile_gsd_m

OPTICAL_10M = {"modality": "optical", "gsd_m": [10.0, 10.0], "counts": ["uint8"]}


def _ground_m(crs: CRS, x: float, y: float, dx: float, dy: float) -> float:
    """Ground metres between two map points (great circle, mean Earth radius)."""
    (lon0, lon1), (lat0, lat1) = warp(crs, "EPSG:4326", [x, x + dx], [y, y + dy])
    p0, p1, dl = math.radians(lat0), math.radians(lat1), math.radians(lon1 - lon0)
    h = math.sin((p1 - p0) / 2) ** 2 + math.cos(p0) * math.cos(p1) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


@pytest.mark.parametrize("crs_text", ["EPSG:3857", "EPSG:3395", "+proj=merc +lat_ts=30 +datum=WGS84 +units=m",
                                      "+proj=merc +datum=WGS84 +units=us-ft"])
@pytest.mark.parametrize("lat", [54.0, -35.0, 0.0])
def test_a_mercator_tile_is_judged_by_its_ground_metres(crs_text: str, lat: float) -> None:
    crs = CRS.from_user_input(crs_text)
    (x,), (y,) = warp("EPSG:4326", crs, [12.0], [lat])
    unit = crs.linear_units_factor[1]
    step = 10.0 / _ground_m(crs, x, y, 1.0, 0.0)  # map units of a 10 m pixel here
    gsd = tile_gsd_m((step, 0.0, x, 0.0, -step, y), crs)
    assert gsd == pytest.approx(10.0, rel=0.01), (crs_text, lat, step * unit)
    assert fit_warnings(OPTICAL_10M, "optical", [gsd]) == []


def test_projections_whose_unit_is_a_ground_metre_are_unchanged() -> None:
    assert tile_gsd_m((10.0, 0.0, 5e5, 0.0, -10.0, 6e6), CRS.from_epsg(32633)) == 10.0
    assert tile_gsd_m((10.0, 0.0, 0.0, 0.0, -10.0, 0.0), CRS.from_epsg(2263)) == pytest.approx(3.048006, rel=1e-6)
