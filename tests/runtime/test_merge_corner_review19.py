"""The ground's merge of pieces that meet only at a corner (8-connectivity): one Polygon per vessel."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import shape

from runtime.merge import merge_detections
from runtime.vectorize import tile_borders, vectorize

THRESHOLD = 0.5


def _diagonal_ship(size: int = 32) -> np.ndarray:
    """A ship of two 4 x 4 px blocks meeting at one corner, the point (16, 16): one vessel under
    8-connectivity, and a plain rectangle in each of the tiles that a border at row and column 16 cuts."""
    prob = np.zeros((size, size))
    prob[12:16, 12:16] = prob[16:20, 16:20] = 0.9
    return prob


@pytest.mark.parametrize("tolerance", [0.0, 0.01])
def test_pieces_meeting_at_a_corner_merge_into_one_polygon_measured_as_whole(tolerance: float) -> None:
    """Cut by tile borders at row and column 16, exactly where the ship's two blocks meet at a corner,
    the ship comes down as two pieces touching at one point. Merged, it must be one valid Polygon
    (their union was a MultiPolygon) measured as the payload measures the ship seen whole in one tile."""
    prob = _diagonal_ship()
    whole = vectorize(prob, THRESHOLD, Affine.identity(), None, min_area_px=4)
    assert len(whole) == 1
    pieces = []
    for row in (0, 16):
        for col in (0, 16):
            tile = prob[row:row + 16, col:col + 16]
            pieces += vectorize(tile, THRESHOLD, Affine.translation(col, row), None, min_area_px=4,
                                borders=tile_borders([row, col, 16, 16], (16, 16), (16, 16)))
    assert len(pieces) == 2
    merged = merge_detections(pieces, None, tolerance=tolerance)
    assert len(merged) == 1
    assert merged[0]["geometry"]["type"] == "Polygon"
    geom = shape(merged[0]["geometry"])
    assert geom.is_valid
    got, want = merged[0]["properties"], whole[0]["properties"]
    assert got["pieces"] == 2 and got["area_px"] == want["area_px"]
    for key in ("area_m2", "length_m", "width_m", "heading_deg"):
        assert got[key] == pytest.approx(want[key], abs=1e-2), key  # the payload bridges by a hair too


def test_a_corner_between_two_squares_is_bridged_not_grown() -> None:
    """Two squares meeting at a corner (as a ground without a payload's tiles may give them): one Polygon
    whose area and extent are the squares' to a hair."""
    from shapely.geometry import box, mapping

    feats = [{"type": "Feature", "geometry": mapping(g), "properties": {"score": 0.9, "area_px": 9}}
             for g in (box(0, 0, 3, 3), box(3, 3, 6, 6))]
    (merged,) = merge_detections(feats, None)
    geom = shape(merged["geometry"])
    assert geom.geom_type == "Polygon" and geom.is_valid
    assert geom.area == pytest.approx(18.0, abs=1e-6)
    assert geom.bounds == pytest.approx((0, 0, 6, 6), abs=1e-3)
