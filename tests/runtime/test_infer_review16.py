"""Review: ``runtime infer`` on scenes a user brings (whole vessels across tile borders, simplified
outlines, no-data pixels, palette GeoTIFFs, memory), each through the real OpenVINO brightness model
and real GeoTIFFs."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from runtime import offline
from runtime.bundle import read_bundle
from runtime.merge import merge_detections
from runtime.vectorize import tile_borders, vectorize
from tests.conftest import make_brightness_bundle

UTM = "EPSG:32631"
NORTH_UP_3M = Affine(3.0, 0, 500000.0, 0, -3.0, 4000000.0)
SEA, SHIP = 15, 250


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review16") / "b"
    make_brightness_bundle(out, size=64)
    return out


def _write(path: Path, pixels: np.ndarray, **kwargs: object) -> Path:
    with rasterio.open(path, "w", driver="GTiff", height=pixels.shape[1], width=pixels.shape[2], count=pixels.shape[0],
                       dtype=pixels.dtype, **kwargs) as dst:
        dst.write(pixels)
    return path


def _infer(bundle: Path, path: Path, **opts: object) -> list[dict]:
    options = {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8, **opts}
    return offline.infer_file(bundle, path, "CPU", options)["features"]


def _ellipse(shape: tuple[int, int], cx: float, cy: float, angle_deg: float, a: float, b: float) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    t = np.radians(angle_deg)
    u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
    v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def test_connectivity_4_pieces_meeting_at_two_corners_across_a_border_stay_two(bundle: Path, tmp_path: Path) -> None:
    """A C-shaped vessel left of the border at column 64 and a bar right of it that touches the C's two
    arms at two corners only: with connectivity 4 they are two vessels (as one tile would give them);
    the merge took two corners for an edge (their overlaps' perimeters added up)."""
    pixels = np.full((3, 64, 128), SEA, np.uint8)
    pixels[:, 20:30, 60:64] = SHIP
    pixels[:, 30, 60] = SHIP
    pixels[:, 31:41, 60:64] = SHIP  # the C: 81 px, joined through column 60
    pixels[:, 30, 64:70] = SHIP  # the bar: 6 px, its first pixel diagonal to both arms
    path = _write(tmp_path / "c.tif", pixels, crs=UTM, transform=NORTH_UP_3M)
    got = sorted((f["properties"]["area_px"], f["properties"]["pieces"]) for f in _infer(bundle, path, connectivity=4))
    assert got == [(6, 1), (81, 1)]
    got8 = sorted((f["properties"]["area_px"], f["properties"]["pieces"]) for f in _infer(bundle, path, connectivity=8))
    assert got8 == [(87, 2)]


@pytest.mark.parametrize("cx", [60.5, 64.0, 65.1])
def test_simplify_keeps_a_vessel_cut_by_a_tile_border_whole(bundle: Path, tmp_path: Path, cx: float) -> None:
    """A 50 x 10 px ellipse across the borders at column 64 (and row 64), with ``[vectorize] simplify_px = 1``: one
    vessel of all its pixels, not two (each piece simplified on its own left the border line, so the
    merge no longer saw them touch)."""
    mask = _ellipse((128, 128), cx, 40, 105, 25, 5)
    pixels = np.full((3, 128, 128), SEA, np.uint8)
    pixels[:, mask] = SHIP
    path = _write(tmp_path / "e.tif", pixels, crs=UTM, transform=NORTH_UP_3M)
    features = _infer(bundle, path, simplify_px=1.0)
    assert [f["properties"]["area_px"] for f in features] == [int(mask.sum())]
    assert features[0]["properties"]["pieces"] >= 2
    assert features[0]["properties"]["length_m"] == pytest.approx(150, rel=0.05)


def test_simplify_does_not_weld_vessels_a_pixel_apart(bundle: Path, tmp_path: Path) -> None:
    """Two vessels (8-connected components) inside one tile stay two with ``simplify_px = 1``: each
    outline simplified on its own reached into the other, and the merge welded them."""
    pattern = [".#......", "#.......", "##.###..", "..####..", "...###..", "...##..#", "....#.##", "...##...",
               "....###.", "...###..", ".....#.."]
    mask = np.array([[c == "#" for c in row] for row in pattern])
    pixels = np.full((3, 64, 64), SEA, np.uint8)
    pixels[:, 20:20 + mask.shape[0], 20:20 + mask.shape[1]][:, mask] = SHIP
    path = _write(tmp_path / "p.tif", pixels, crs=UTM, transform=NORTH_UP_3M)
    got = sorted((f["properties"]["area_px"], f["properties"]["pieces"]) for f in _infer(bundle, path, min_area_px=1,
                                                                                        simplify_px=1.0))
    assert got == [(3, 1), (26, 1)]


def test_payload_pieces_cut_by_a_border_still_meet_after_simplify() -> None:
    """The payload's side (hil merges what it downlinks): a piece cut by a tile border keeps its raster
    outline when ``simplify_px`` > 0, so the ground's merge still joins it with its neighbour's."""
    crs = CRS.from_epsg(32631)
    scene = _ellipse((128, 128), 64.0, 40, 105, 25, 5).astype(np.float32)
    features = []
    for row in (0, 64):
        for col in (0, 64):
            tile = scene[row:row + 64, col:col + 64]
            features += vectorize(tile, 0.5, NORTH_UP_3M * Affine.translation(col, row), crs, min_area_px=4,
                                  simplify_px=1.0, borders=tile_borders([row, col, 64, 64], (64, 64), (64, 64)))
    merged = merge_detections(features, crs, tolerance=0.03)
    assert [f["properties"]["area_px"] for f in merged] == [int(scene.sum())]
    assert merged[0]["properties"]["pieces"] >= 2


@pytest.mark.parametrize("how", ["alpha", "nodata"])
def test_no_vessel_where_the_file_says_there_is_no_data(bundle: Path, tmp_path: Path, how: str) -> None:
    """A scene whose corner the file marks as no data (alpha 0, or the nodata value), filled white
    there as exports often are: the ship at sea is found, nothing is reported in the no-data corner
    (it was a 'vessel' of 1,600 px)."""
    pixels = np.full((3, 128, 128), SEA, np.uint8)
    pixels[:, 90:96, 20:60] = SHIP  # the ship: 240 px
    outside = np.zeros((128, 128), bool)
    outside[:40, :40] = True
    pixels[:, outside] = 255
    if how == "alpha":
        alpha = np.where(outside, 0, 255).astype(np.uint8)[None]
        path = _write(tmp_path / "a.tif", np.concatenate([pixels, alpha]), crs=UTM, transform=NORTH_UP_3M,
                      photometric="RGB", alpha="YES")
    else:
        path = _write(tmp_path / "n.tif", pixels, crs=UTM, transform=NORTH_UP_3M, nodata=255)
    assert [f["properties"]["area_px"] for f in _infer(bundle, path)] == [240]


def test_a_palette_geotiff_feeds_its_colours_as_the_rig_does(bundle: Path, tmp_path: Path) -> None:
    """A palette GeoTIFF (index 1 = white ship, 0 = dark sea): the rig feeds the colours
    (docs/data.md, "Palette images"), ``runtime infer`` fed the indices 0 and 1 and found nothing."""
    index = np.zeros((128, 128), np.uint8)
    index[30:36, 40:100] = 1
    with rasterio.open(tmp_path / "pal.tif", "w", driver="GTiff", height=128, width=128, count=1, dtype="uint8",
                       crs=UTM, transform=NORTH_UP_3M, photometric="palette") as dst:
        dst.write(index, 1)
        dst.write_colormap(1, {0: (10, 20, 60, 255), 1: (250, 250, 250, 255)})
    collection = offline.infer_file(bundle, tmp_path / "pal.tif", "CPU",
                                    {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8})
    assert collection["bands"]["adaptation"].startswith("3 source bands ['red', 'green', 'blue']")
    assert [(f["properties"]["area_px"], f["properties"]["length_m"]) for f in collection["features"]] == [(360, 180.0)]


def test_a_large_single_band_scene_costs_a_tile_of_memory(bundle: Path, tmp_path: Path) -> None:
    """A 2048 x 2048 single-band scene (4 MiB of counts) repeated into the model's three bands: the
    whole scene was read and then copied three times over (16 MiB of arrays); read a tile at a time,
    the arrays held at once stay far under the scene's size."""
    pixels = np.full((1, 2048, 2048), SEA, np.uint8)
    pixels[0, 1000:1006, 1000:1040] = SHIP
    path = _write(tmp_path / "big.tif", pixels, crs=UTM, transform=NORTH_UP_3M, tiled=True, blockxsize=256,
                  blockysize=256)
    del pixels
    tracemalloc.start()
    try:
        features = _infer(bundle, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [f["properties"]["area_px"] for f in features] == [240]
    assert peak < 2 * 2**20, f"{peak / 2**20:.1f} MiB held at once for a 4 MiB scene"


def _sar_scene(path: Path) -> Path:
    """512 x 512 dark speckled sea (3 m UTM) with three 50 x 10 px bright ships: two across the tile
    border at column 256 (30 | 20 and 16 | 34 px), one inside a tile."""
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(20, 6, (1, 512, 512)), 0, 255).astype(np.uint8)
    for row, col in ((100, 226), (300, 240), (400, 100)):
        pixels[0, row:row + 10, col:col + 50] = 200
    return _write(path, pixels, crs=UTM, transform=NORTH_UP_3M)


def test_the_second_stage_does_not_cut_a_vessel_short_at_a_tile_border(tmp_path: Path) -> None:
    """models/sar's second stage judged each piece of a ship a tile border cuts on its own and dropped
    the smaller piece (its truncated shape and edge context look unlike a ship), so the two ships across
    the border came down 93 m and 108 m long beside the same ship inside a tile at 159 m (on the
    held-out test split, 16 of 161 detections were cut short so). The merge now keeps the whole vessel
    where its largest piece passes, and reports that piece's ship probability (here each ship's
    area-weighted probability, 0.56 and 0.58, is under the cut, 0.65: a rule on it would lose both).

    Which of the three ships a shipped stage keeps is the model's verdict (the models/sar of
    2026-12-05 kept all three; the one trained on the leak-free split keeps the ship inside a tile and
    one of the two across the border; each kept one's ship probability is at least the stage's cut,
    which the shipped stage sets: 0.325 since 2026-12-06): what must hold for any is that a ship comes down whole, its
    50 px (150 m), or not at all, never as a piece (16-34 px: 48-102 m)."""
    repo = Path(__file__).parents[2]
    features = offline.infer_file(repo / "models" / "sar", _sar_scene(tmp_path / "sar.tif"), "CPU",
                                  {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8})["features"]
    cut = read_bundle(repo / "models" / "sar").discriminator.cut
    assert 2 <= len(features) <= 3
    for props in (f["properties"] for f in features):
        assert 150 - 6 <= props["length_m"] <= 150 + 12, props  # whole: two pixels short to four long
        assert props["ship_probability"] >= cut  # kept by the stage's cut (0.325 since 2026-12-06), not by luck
        assert not any(key.startswith("provisional_") for key in props)
    assert 2 in [f["properties"]["pieces"] for f in features]  # a ship across the border, merged whole


def _piece(x0: float, x1: float, p: float) -> dict:
    """A 3 px high piece of a vessel from x0 to x1 that a border cut, the stage's verdict ``p``, cut 0.5."""
    ring = [(x0, 0.0), (x1, 0.0), (x1, 3.0), (x0, 3.0), (x0, 0.0)]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"score": 0.9, "max_score": 0.95, "area_px": int(3 * (x1 - x0)), "ship_probability": p,
                           "provisional_ship_probability": 0.5}}


def test_the_merge_applies_the_second_stage_s_cut_to_the_whole_vessel() -> None:
    """Pieces at a border come down whatever the second stage said, with its cut; the merge keeps the
    vessel whole where its largest piece passes (a ship whose small piece fails), and otherwise only
    the pieces that pass, as the payload judged them (land clutter whose small piece looks like a
    ship stays that small piece, not the whole blob): the merge never drops a piece the stage passed."""
    kept = merge_detections([_piece(0, 10, 0.8), _piece(10, 14, 0.2)], None, tolerance=0.01)
    assert [(f["properties"]["pieces"], f["properties"]["length_m"], f["properties"]["ship_probability"])
            for f in kept] == [(2, pytest.approx(14.0), 0.8)]
    assert "provisional_ship_probability" not in kept[0]["properties"]
    [small] = merge_detections([_piece(0, 4, 0.8), _piece(4, 40, 0.2)], None, tolerance=0.01)  # clutter
    assert (small["properties"]["pieces"], small["properties"]["ship_probability"]) == (1, 0.8)
    assert "provisional_ship_probability" not in small["properties"]
    assert merge_detections([_piece(0, 10, 0.3), _piece(10, 14, 0.2)], None, tolerance=0.01) == []
    assert merge_detections([_piece(20, 24, 0.2)], None, tolerance=0.01) == []
    [alone] = merge_detections([_piece(20, 30, 0.7)], None, tolerance=0.01)
    assert "provisional_ship_probability" not in alone["properties"]


@pytest.mark.parametrize("rule, kept", [
    ("largest-else-passed", [(1, 0.8)]), ("piecewise", [(1, 0.8)]), ("any", [(2, 0.2)]), ("weighted", []),
    ("largest", []),
])
def test_each_border_rule_judges_a_vessel_whose_small_piece_passes(rule: str, kept: list) -> None:
    """The rules scripts/border_rules.py measures, on clutter whose small piece passes the stage: only
    the default and piecewise keep exactly the piece the stage passed."""
    out = merge_detections([_piece(0, 4, 0.8), _piece(4, 40, 0.2)], None, tolerance=0.01, border_rule=rule)
    assert [(f["properties"]["pieces"], f["properties"]["ship_probability"]) for f in out] == kept
    with pytest.raises(ValueError, match="valid: \\['largest-else-passed'"):
        merge_detections([], None, border_rule="nope")


@pytest.mark.parametrize("crs, top, ship", [("EPSG:4326", 95.0, True), ("EPSG:4326", 95.0, False),
                                           ("IAU_2015:30100", 50.0, False)])
def test_infer_refuses_a_geographic_scene_off_the_earth_as_the_runtime_does(bundle: Path, tmp_path: Path, crs: str,
                                                                             top: float, ship: bool) -> None:
    """A geographic GeoTIFF whose corners reach latitude 95, or one in a CRS of the Moon: the runtime
    refuses every tile (bad_header, runtime.on_the_earth.check_on_the_earth), so hil gets no vessel; infer
    inferred it all and then failed on PROJ's internal error where a vessel was to be measured, or,
    with no vessel, wrote a result off the Earth."""
    pixels = np.full((3, 128, 128), SEA, np.uint8)
    if ship:
        pixels[:, 60:66, 20:60] = SHIP
    path = _write(tmp_path / "off.tif", pixels, crs=crs, transform=Affine(3e-5, 0, 10.0, 0, -3e-5, top))
    with pytest.raises(ValueError, match="the runtime rejects its tiles: bad_header: a geographic tile"):
        _infer(bundle, path)
