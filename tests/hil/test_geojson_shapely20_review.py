"""detections.geojson is written with shapely 2.0, which pyproject.toml accepts: the right-hand rule
fix of 2026-12-05 called ``shapely.orient_polygons`` (new in shapely 2.1), an AttributeError
traceback at the end of every ``hil run`` there, after the whole run and its scoring."""

from __future__ import annotations

import pytest
import shapely
from rasterio.crs import CRS
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from hil.geojson import detections_collection


def test_rings_are_oriented_without_shapely_2_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(shapely, "orient_polygons", raising=False)  # as on shapely 2.0
    clockwise = Polygon([(0, 0), (0, 10), (10, 10), (10, 0)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])
    parts = MultiPolygon([clockwise, Polygon([(20, 0), (20, 5), (25, 5), (25, 0)])])
    features = [{"type": "Feature", "geometry": mapping(g), "properties": {"scene": "a"}} for g in (clockwise, parts)]
    collection, said = detections_collection(features, {"a": CRS.from_epsg(32631)})
    assert said == "shared"
    one, many = (shape(f["geometry"]) for f in collection["features"])
    assert one.exterior.is_ccw and not one.interiors[0].is_ccw
    assert all(p.exterior.is_ccw for p in many.geoms)
