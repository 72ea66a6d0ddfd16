"""Tests for runtime.vectorize: known masks in, known polygons and measurements out."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import shape

from runtime.measure import describe
from runtime.vectorize import vectorize

UTM = CRS.from_epsg(32631)
NORTH_UP_3M = Affine(3, 0, 500000, 0, -3, 4_200_000)
THRESHOLD = 0.5


def blank(h: int = 128, w: int = 128) -> np.ndarray:
    return np.zeros((h, w), np.float32)


def box(prob: np.ndarray, rows: slice, cols: slice, value: float = 0.9) -> np.ndarray:
    prob[rows, cols] = value
    return prob


def only(features: list[dict]) -> dict:
    assert len(features) == 1, features
    return features[0]["properties"]


def test_east_west_rectangle_measures_in_metres() -> None:
    prob = box(blank(), slice(20, 30), slice(10, 50))  # 10 rows x 40 columns
    props = only(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM))
    assert props["units"] == "m"
    assert props["area_px"] == 400
    assert props["area_m2"] == pytest.approx(40 * 10 * 9)
    assert props["length_m"] == pytest.approx(120)
    assert props["width_m"] == pytest.approx(30)
    assert props["heading_deg"] == pytest.approx(90)


def test_north_south_rectangle_heads_zero() -> None:
    prob = box(blank(), slice(10, 50), slice(20, 30))
    props = only(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM))
    assert props["length_m"] == pytest.approx(120)
    assert props["width_m"] == pytest.approx(30)
    assert props["heading_deg"] == pytest.approx(0)


def rotated_ship(direction_rc: tuple[float, float], length: float = 60, width: float = 12):
    """A rasterized rectangle centred in a 128 x 128 tile, long axis along (d_col, d_row)."""
    dc, dr = direction_rc
    norm = math.hypot(dc, dr)
    ux, uy = dc / norm, dr / norm  # long axis in (col, row)
    vx, vy = -uy, ux
    c, hl, hw = 64.0, length / 2, width / 2
    corners = [
        (c + sl * ux * hl + sw * vx * hw, c + sl * uy * hl + sw * vy * hw)
        for sl, sw in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    burnt = rasterio.features.rasterize(
        [(shapely.Polygon(corners), 1)], out_shape=(128, 128), transform=Affine.identity()
    )
    return burnt.astype(np.float32)


def test_ship_from_bottom_left_to_top_right_bears_45() -> None:
    # Up the image (row decreasing) is north with a north-up transform, so +col/-row is north-east.
    prob = rotated_ship((1.0, -1.0))
    props = only(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM))
    assert props["heading_deg"] == pytest.approx(45, abs=3)
    assert props["length_m"] == pytest.approx(60 * 3, rel=0.05)


def test_ship_from_top_left_to_bottom_right_bears_135() -> None:
    props = only(vectorize(rotated_ship((1.0, 1.0)), THRESHOLD, NORTH_UP_3M, UTM))
    assert props["heading_deg"] == pytest.approx(135, abs=3)


def test_two_blobs_two_features_and_small_blob_dropped() -> None:
    prob = blank()
    box(prob, slice(5, 10), slice(5, 10))
    box(prob, slice(60, 70), slice(80, 90))
    box(prob, slice(100, 101), slice(100, 103))  # 3 pixels < min_area_px=4
    features = vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM, min_area_px=4)
    assert sorted(f["properties"]["area_px"] for f in features) == [25, 100]


def test_empty_map_gives_no_features() -> None:
    assert vectorize(blank(), THRESHOLD, NORTH_UP_3M, UTM) == []
    # Just below the threshold is still empty.
    assert vectorize(blank() + 0.49, THRESHOLD, NORTH_UP_3M, UTM) == []


def test_score_is_mean_and_max_of_blob_pixels() -> None:
    rng = np.random.default_rng(0)
    prob = blank()
    patch = rng.uniform(0.55, 1.0, size=(6, 7)).astype(np.float32)
    prob[30:36, 40:47] = patch
    prob[29, 40:47] = 0.3  # beside the blob but under the threshold: not part of it
    props = only(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM))
    assert props["score"] == pytest.approx(float(patch.mean()), rel=1e-6)
    assert props["max_score"] == pytest.approx(float(patch.max()))


def test_valid_ignores_the_padding() -> None:
    prob = blank(64, 64)
    box(prob, slice(10, 15), slice(10, 15))
    box(prob, slice(50, 60), slice(5, 15))  # entirely in the padded rows
    box(prob, slice(5, 10), slice(52, 60))  # entirely in the padded columns
    box(prob, slice(20, 30), slice(44, 52))  # straddles the edge: only 10 x 4 pixels are image
    features = vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM, valid=(48, 48))
    assert sorted(f["properties"]["area_px"] for f in features) == [25, 40]
    assert len(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM)) == 4


def test_geographic_crs_is_measured_in_metres() -> None:
    deg = 2.7e-5  # about 3 m at the equator
    transform = Affine(deg, 0, 3.0, 0, -deg, 0.01)
    prob = box(blank(), slice(20, 30), slice(10, 50))
    props = only(vectorize(prob, THRESHOLD, transform, CRS.from_epsg(4326)))
    metres_per_deg_lon = 6378137.0 * math.pi / 180  # WGS 84 equator
    metres_per_deg_lat = 110574.0  # meridian arc at the equator
    assert props["units"] == "m"
    assert props["length_m"] == pytest.approx(40 * deg * metres_per_deg_lon, rel=0.02)
    assert props["width_m"] == pytest.approx(10 * deg * metres_per_deg_lat, rel=0.02)
    assert props["heading_deg"] == pytest.approx(90, abs=0.5)
    # The centroid stays in lon/lat.
    assert props["centroid"] == pytest.approx([3.0 + 30 * deg, 0.01 - 25 * deg])


def test_no_crs_measures_in_pixels() -> None:
    prob = box(blank(), slice(20, 30), slice(10, 50))
    props = only(vectorize(prob, THRESHOLD, Affine.identity(), None))
    assert props["units"] == "px"
    assert props["length_m"] == pytest.approx(40)
    assert props["width_m"] == pytest.approx(10)
    assert props["area_m2"] == pytest.approx(400)


def test_polygon_is_in_map_coordinates() -> None:
    prob = box(blank(), slice(20, 30), slice(10, 50))
    feature = vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM)[0]
    poly = shape(feature["geometry"])
    assert poly.bounds == pytest.approx((500000 + 30, 4_200_000 - 90, 500000 + 150, 4_200_000 - 60))
    assert feature["properties"]["centroid"] == pytest.approx([500000 + 90, 4_200_000 - 75])


def test_features_are_plain_json() -> None:
    prob = rotated_ship((1.0, -2.0)) * 0.8
    text = json.dumps(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM), allow_nan=False)
    assert json.loads(text)[0]["type"] == "Feature"


def test_diagonal_line_is_one_vessel_with_8_connectivity() -> None:
    prob = blank()
    for i in range(12):
        prob[20 + i, 20 + i] = 0.9
    props = only(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM, connectivity=8))
    assert props["area_px"] == 12
    assert props["heading_deg"] == pytest.approx(135, abs=3)
    # With 4-connectivity each pixel is its own component, and each is below min_area_px.
    assert vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM, connectivity=4) == []


def test_simplify_reduces_vertices_of_a_staircase() -> None:
    prob = rotated_ship((1.0, -1.0))
    raw = vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM)[0]["geometry"]
    simple = vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM, simplify_px=1.0)[0]["geometry"]
    assert len(simple["coordinates"][0]) < len(raw["coordinates"][0])


def test_hole_is_not_counted_in_area() -> None:
    prob = box(blank(), slice(10, 20), slice(10, 20))
    prob[13:16, 13:16] = 0.0
    props = only(vectorize(prob, THRESHOLD, Affine.identity(), None))
    assert props["area_px"] == 91
    assert props["area_m2"] == pytest.approx(91)


def test_describe_does_not_crash_on_degenerate_polygons() -> None:
    line_like = shapely.Polygon([(0, 0), (3, 4), (6, 8)])
    props = describe(line_like, None)
    assert props["width_m"] == 0.0
    assert props["length_m"] == pytest.approx(10)
    assert all(math.isfinite(v) for k, v in props.items() if k not in ("centroid", "units"))
    point_like = shapely.Polygon([(1, 1), (1, 1), (1, 1)])
    assert describe(point_like, UTM)["length_m"] == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prob": np.zeros((2, 4, 4), np.float32)}, "2-D"),
        ({"threshold": 0.0}, r"\(0, 1\)"),
        ({"threshold": 1.0}, r"\(0, 1\)"),
        ({"connectivity": 6}, r"\(4, 8\)"),
        ({"valid": (200, 10)}, "valid"),
        ({"min_area_px": -1}, ">= 0"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    args = {"prob": blank(), "threshold": THRESHOLD, "transform": NORTH_UP_3M, "crs": UTM}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        vectorize(**args)


def test_components_below_the_score_cut_are_dropped() -> None:
    prob = blank()
    box(prob, slice(5, 10), slice(5, 10))        # the helper's vessel value
    prob[60:70, 80:90] = 0.6                     # lukewarm: above the threshold, below the cut
    kept = vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM, min_score=0.85)
    assert [f["properties"]["area_px"] for f in kept] == [25]
    assert len(vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM)) == 2
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        vectorize(prob, THRESHOLD, NORTH_UP_3M, UTM, min_score=1.0)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_each_component_reports_its_own_pixels(connectivity: int) -> None:
    """Against an independent labelling (scipy's): one feature per component of at least
    min_area_px, whose area, mean and largest probability are those of its pixels, and whose outline
    holds exactly those pixels' centres. Random speckle makes corner-touching pixels, holes and
    components nested in holes."""
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(connectivity)
    structure = np.ones((3, 3)) if connectivity == 8 else None
    rows, cols = np.mgrid[:48, :40]
    for _ in range(40):
        prob = ((rng.random((48, 40)) > 0.55) * rng.random((48, 40))).astype(np.float32)
        features = vectorize(prob, THRESHOLD, Affine.identity(), None, min_area_px=3, connectivity=connectivity)
        labels, n = ndimage.label(prob >= THRESHOLD, structure=structure)
        expected = sorted(
            (int(size), float(prob[labels == i].mean()), float(prob[labels == i].max()))
            for i, size in zip(range(1, n + 1), np.bincount(labels.ravel())[1:]) if size >= 3
        )
        got = sorted((f["properties"]["area_px"], f["properties"]["score"], f["properties"]["max_score"])
                     for f in features)
        assert [g[0] for g in got] == [e[0] for e in expected]
        assert np.allclose([g[1:] for g in got], [e[1:] for e in expected], rtol=1e-6)
        for feature in features:
            outline = shape(feature["geometry"])
            inside = shapely.contains_xy(outline, cols + 0.5, rows + 0.5)
            assert np.all(prob[inside] >= THRESHOLD)
            assert int(inside.sum()) == feature["properties"]["area_px"]


def test_a_small_piece_at_a_tile_border_is_kept_provisional_and_judged_by_the_merge() -> None:
    """min_area_px drops a whole small component on board, but a piece against a border with more
    of the scene beyond it may be part of a vessel the ground merges: it comes down marked."""
    from runtime.merge import merge_detections

    left = box(blank(), slice(40, 43), slice(126, 128))  # 6 px against the right edge
    right = box(blank(), slice(40, 43), slice(0, 2))     # 6 px against the left edge of the next tile
    kept = vectorize(left, THRESHOLD, Affine.identity(), None, min_area_px=10, borders=(False, False, False, True))
    assert [f["properties"]["provisional_min_area_px"] for f in kept] == [10]
    assert vectorize(left, THRESHOLD, Affine.identity(), None, min_area_px=10) == []  # no border there
    inner = box(blank(), slice(40, 43), slice(60, 62))  # as small, but whole inside the tile
    assert vectorize(inner, THRESHOLD, Affine.identity(), None, min_area_px=10, borders=(True,) * 4) == []
    beyond = vectorize(right, THRESHOLD, Affine.translation(128, 0), None, min_area_px=10,
                       borders=(False, True, False, False))
    whole = merge_detections(kept + beyond, None, tolerance=0.01)
    assert [(f["properties"]["area_px"], f["properties"]["pieces"]) for f in whole] == [(12, 2)]
    assert "provisional_min_area_px" not in whole[0]["properties"]
    assert merge_detections(kept, None) == []  # alone it is what min_area_px drops
    big = vectorize(box(blank(), slice(40, 50), slice(118, 128)), THRESHOLD, Affine.identity(), None, min_area_px=10,
                    borders=(False, False, False, True))
    assert "provisional_min_area_px" not in big[0]["properties"]  # over the cut: a vessel like any other


def test_tile_borders_from_the_window_and_the_padding() -> None:
    from runtime.vectorize import tile_borders

    assert tile_borders(None, (256, 256), (256, 256)) == (False, False, False, False)  # a scene of its own
    assert tile_borders([0, 0, 256, 256], (256, 256), (256, 256)) == (False, False, True, True)
    # a short tile may be the last row, or one of tiles cut smaller than the input: a border either way
    assert tile_borders([256, 512, 100, 256], (100, 256), (256, 256)) == (True, True, True, True)
