"""detections.geojson follows RFC 7946's right-hand rule: a vessel merged from border pieces (a GEOS
union) came out with a clockwise exterior, beside counterclockwise ones, in the same file."""

from __future__ import annotations

from typing import Any

import pytest
from rasterio.crs import CRS
from shapely.geometry import Polygon, mapping, shape

from hil.geojson import detections_collection


def _feature(scene: str, poly: Polygon) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(poly), "properties": {"scene": scene}}


@pytest.mark.parametrize("crs_of, how", [
    ({"a": CRS.from_epsg(32631)}, "shared"),
    ({"a": CRS.from_epsg(32631), "b": CRS.from_epsg(32632)}, "crs84"),
    ({"a": CRS.from_epsg(32631), "b": None}, "per-feature"),
])
def test_exteriors_are_counterclockwise_and_holes_clockwise(crs_of: dict[str, Any], how: str) -> None:
    # clockwise exterior, counterclockwise hole: what a union of two border pieces gives
    outer = [(500000, 4400000), (500000, 4400030), (500030, 4400030), (500030, 4400000)]
    hole = [(500010, 4400010), (500020, 4400010), (500020, 4400020), (500010, 4400020)]
    poly = Polygon(outer, [hole])
    assert not poly.exterior.is_ccw and poly.interiors[0].is_ccw
    collection, said = detections_collection([_feature("a", poly)], crs_of)
    assert said == how
    written = shape(collection["features"][0]["geometry"])
    assert written.exterior.is_ccw and not written.interiors[0].is_ccw
    assert written.is_valid
