"""Review 19: the Mercator scale of a tile far south of the map overflowed.

``tile_gsd_m`` bounded the Mercator ``cosh`` argument from above only: a tile whose origin lies
4.5e9 map metres north of the false northing was judged 1e-303 m, one as far south raised
OverflowError, which the runtime counts as an internal error (a bug event) rather than a fit finding.
"""

from __future__ import annotations

from rasterio.crs import CRS

from runtime.fit import tile_fit_warnings, tile_gsd_m

TRAINED = {"modality": "optical", "gsd_m": [5.0, 20.0]}


def test_a_mercator_tile_far_south_is_judged_as_one_as_far_north() -> None:
    crs = CRS.from_epsg(3857)
    north = tile_gsd_m((10.0, 0.0, 0.0, 0.0, -10.0, 1e10), crs)
    south = tile_gsd_m((10.0, 0.0, 0.0, 0.0, -10.0, -1e10), crs)
    assert south == north
    warnings = tile_fit_warnings(TRAINED, "optical", (10.0, 0.0, 0.0, 0.0, -10.0, -1e10), crs, "uint8")
    assert len(warnings) == 1 and "ground sample distance" in warnings[0]
