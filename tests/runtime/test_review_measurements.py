"""Review: measurements and georeference of vectorised vessels (wrong numbers, not style)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from runtime.merge import merge_detections
from runtime.vectorize import tile_borders, vectorize

THRESHOLD = 0.5


def _vincenty(lon1: float, lat1: float, lon2: float, lat2: float) -> tuple[float, float]:
    """Geodesic distance (m) and forward azimuth (degrees clockwise from true north) on WGS 84:
    an independent check (pyproj is not installed here)."""
    a, f = 6378137.0, 1 / 298.257223563
    b = a * (1 - f)
    big_l = math.radians(lon2 - lon1)
    u1, u2 = math.atan((1 - f) * math.tan(math.radians(lat1))), math.atan((1 - f) * math.tan(math.radians(lat2)))
    su1, cu1, su2, cu2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    lam = big_l
    for _ in range(200):
        sl, cl = math.sin(lam), math.cos(lam)
        ss = math.hypot(cu2 * sl, cu1 * su2 - su1 * cu2 * cl)
        cs = su1 * su2 + cu1 * cu2 * cl
        sig = math.atan2(ss, cs)
        sa = cu1 * cu2 * sl / ss
        c2a = 1 - sa * sa
        c2sm = cs - 2 * su1 * su2 / c2a if c2a else 0.0
        c = f / 16 * c2a * (4 + f * (4 - 3 * c2a))
        prev, lam = lam, big_l + (1 - c) * f * sa * (sig + c * ss * (c2sm + c * cs * (-1 + 2 * c2sm * c2sm)))
        if abs(lam - prev) < 1e-13:
            break
    u2s = c2a * (a * a - b * b) / (b * b)
    aa = 1 + u2s / 16384 * (4096 + u2s * (-768 + u2s * (320 - 175 * u2s)))
    bb = u2s / 1024 * (256 + u2s * (-128 + u2s * (74 - 47 * u2s)))
    ds = bb * ss * (c2sm + bb / 4 * (cs * (-1 + 2 * c2sm * c2sm) - bb / 6 * c2sm * (-3 + 4 * ss * ss)
                                     * (-3 + 4 * c2sm * c2sm)))
    az = math.degrees(math.atan2(cu2 * math.sin(lam), cu1 * su2 - su1 * cu2 * math.cos(lam)))
    return b * aa * (sig - ds), az % 360


@pytest.mark.parametrize("lon, lat", [(5.9, 60.0), (-179.99, 60.0), (190.0, 0.0), (190.0, 45.0)])
def test_a_vessel_in_lon_lat_heads_from_true_north_and_measures_geodesically(lon: float, lat: float) -> None:
    """A vessel along a parallel in EPSG:4326 heads 90 degrees (its CRS's north is true north) and is
    as long as the geodesic between its ends, wherever it lies in its UTM zone (and with longitudes
    written 0-360, as some global GeoTIFFs have them)."""
    deg = 1e-4
    transform = Affine(deg, 0, lon, 0, -deg, lat)
    prob = np.zeros((64, 64), np.float32)
    prob[20:30, 10:50] = 0.9  # 40 columns (east-west) x 10 rows
    [feature] = vectorize(prob, THRESHOLD, transform, CRS.from_epsg(4326))
    props = feature["properties"]
    mid_lat = lat - 25 * deg
    length, azimuth = _vincenty(lon + 10 * deg, mid_lat, lon + 50 * deg, mid_lat)
    width, _ = _vincenty(lon + 30 * deg, lat - 20 * deg, lon + 30 * deg, lat - 30 * deg)
    assert props["length_m"] == pytest.approx(length, rel=0.005)
    assert props["width_m"] == pytest.approx(width, rel=0.005)
    assert props["heading_deg"] == pytest.approx(azimuth % 180, abs=0.5)


def test_connectivity_4_vessels_touching_at_a_corner_stay_two_after_the_merge(tmp_path: Path) -> None:
    """``runtime infer`` with connectivity 4: two bright blocks meeting only at a corner are two
    vessels for the payload (vectorize says so), inside one tile or across a tile border; the merge
    after it must not weld them into one (it joins every pair of features that touch)."""
    from runtime import offline
    from tests.conftest import make_brightness_bundle

    make_brightness_bundle(tmp_path / "b", size=64)
    pixels = np.full((3, 128, 128), 15, np.uint8)
    pixels[:, 10:20, 10:20] = 250
    pixels[:, 20:30, 20:30] = 250  # corner to corner with the first, inside tile (0, 0)
    pixels[:, 80:90, 54:64] = 250
    pixels[:, 90:100, 64:74] = 250  # corner to corner across the border at column 64
    pixels[:, 40:43, 58:70] = 250  # one vessel cut by that border: still joined
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=128, width=128, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=Affine(3.0, 0, 500000.0, 0, -3.0, 4000000.0)) as dst:
        dst.write(pixels)
    fc = offline.infer_file(tmp_path / "b", tmp_path / "s.tif", "CPU",
                            {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 4})
    got = sorted((f["properties"]["area_px"], f["properties"]["pieces"]) for f in fc["features"])
    assert got == [(36, 2), (100, 1), (100, 1), (100, 1), (100, 1)]


def test_a_vessel_cut_by_the_border_of_tiles_smaller_than_the_model_input_survives() -> None:
    """flightsim stream --tile-size 64 to a 96-pixel model: every tile is padded, and none is the
    last of its row. A 6-pixel vessel (min_area_px 4) cut 3 | 3 by the border at column 64 must come
    down whole after the ground's merge, as it does with 96-pixel tiles."""
    crs = CRS.from_epsg(32631)
    transform = Affine(3, 0, 500000, 0, -3, 4_200_000)
    scene = np.zeros((128, 192), np.float32)
    scene[40, 61:67] = 0.9  # one row, columns 61..66: 3 px each side of column 64
    features = []
    for col in (0, 64, 128):
        for row in (0, 64):
            tile = np.zeros((96, 96), np.float32)
            tile[:64, :64] = scene[row:row + 64, col:col + 64]
            window = [row, col, 64, 64]
            features += vectorize(tile, THRESHOLD, transform * Affine.translation(col, row), crs, min_area_px=4,
                                  valid=(64, 64), borders=tile_borders(window, (64, 64), (96, 96)))
    merged = merge_detections(features, crs, tolerance=0.03)
    assert [(f["properties"]["area_px"], f["properties"]["length_m"]) for f in merged] == [(6, pytest.approx(18.0))]


def test_runtime_infer_of_a_geotiff_without_a_crs_measures_in_pixels(tmp_path: Path) -> None:
    """A GeoTIFF with a geotransform but no CRS: units unknown, so ``runtime infer`` must measure in
    pixels as it labels them (``units: px``; docs/protocol.md: "the _m2/_m values are in pixels"),
    and as hil run reads the same file (flightsim.sources.base.Georef.resolve drops such a
    transform). Not 10 x the pixels, in the transform's unknown units, under a ``px`` label."""
    from runtime import offline
    from tests.conftest import make_brightness_bundle

    make_brightness_bundle(tmp_path / "b", size=64)
    pixels = np.full((3, 64, 64), 15, np.uint8)
    pixels[:, 30:33, 20:32] = 250  # 3 rows x 12 columns
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=64, width=64, count=3, dtype="uint8",
                       transform=Affine(10.0, 0, 1000.0, 0, -10.0, 5000.0)) as dst:
        dst.write(pixels)
    fc = offline.infer_file(tmp_path / "b", tmp_path / "s.tif", "CPU",
                            {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8})
    [props] = [f["properties"] for f in fc["features"]]
    assert props["units"] == "px"
    assert (props["length_m"], props["width_m"], props["area_m2"]) == pytest.approx((12.0, 3.0, 36.0))
