"""A vessel inside the overlap of two tiles and across their ownership line (hil.merge.tile_pieces).

Each tile is judged alone on board, so one of the two may keep such a vessel and the other drop it
(a second stage, a minimum score). Clipped to its owned half, the kept copy came down cut short.
The features are what a runtime sends (GeoJSON polygons with their properties, from
runtime.vectorize's own describe); the merge is the ground's own.
"""

from __future__ import annotations

import pytest
import rasterio.crs
from affine import Affine
from shapely.geometry import box, mapping

from hil.merge import owned_box, tile_pieces, whole_vessels
from runtime.measure import describe

CRS = rasterio.crs.CRS.from_epsg(32631)
T = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4200000.0)
# two 64 px tiles side by side with 32 px of overlap: A owns columns 0-47, B 48-95 (of 96)
WINDOWS = {"A": (0, 0, 64, 64), "B": (0, 32, 64, 64)}
OWNED = {"A": (0, 0, 64, 48), "B": (0, 48, 64, 48)}
SCENE = owned_box(T, (0, 0, 64, 96))


def _vessel(col0: int, col1: int, row0: int = 20, row1: int = 26) -> dict:
    """A vessel over columns col0..col1 and rows row0..row1 of the scene, as a runtime describes it."""
    (x0, y0), (x1, y1) = T * (col0, row0), T * (col1, row1)
    poly = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    props = {"score": 0.9, "max_score": 0.95, "area_px": (col1 - col0) * (row1 - row0), **describe(poly, CRS)}
    return {"type": "Feature", "geometry": mapping(poly), "properties": props}


def _vessels(answers: dict[str, list[dict]]) -> list[dict]:
    tiles = [(answers[t], owned_box(T, WINDOWS[t]), owned_box(T, OWNED[t])) for t in answers]
    return whole_vessels(tile_pieces(tiles, SCENE, CRS, 4.0), CRS, tolerance=1e-3)


def test_a_vessel_only_its_owning_tile_kept_comes_down_whole() -> None:
    ship = _vessel(36, 56)  # 20 px: inside the overlap (32-63), across the line at 48, centroid at 46: A's
    got = _vessels({"A": [ship], "B": []})  # B dropped it
    assert len(got) == 1 and got[0]["properties"]["length_m"] == pytest.approx(40.0)  # 20 px x 2 m, not 24 m


def test_a_vessel_both_tiles_kept_comes_down_once() -> None:
    ship = _vessel(36, 56)
    got = _vessels({"A": [ship], "B": [_vessel(36, 56)]})
    assert len(got) == 1 and got[0]["properties"]["length_m"] == pytest.approx(40.0)
    assert got[0]["properties"]["area_px"] == 120 and got[0]["properties"]["pieces"] == 1  # not counted twice


def test_where_the_owning_tile_saw_the_vessel_whole_its_verdict_stands() -> None:
    got = _vessels({"A": [], "B": [_vessel(36, 56)]})  # A, which owns its centre and saw it whole, dropped it
    assert got == []


def test_where_the_owner_saw_only_a_piece_the_whole_copy_wins() -> None:
    # 50-70: whole in B (32-95), a piece in A (cut at A's edge, column 64); centroid at 60, B's
    ship = _vessel(50, 70)
    piece_in_a = _vessel(50, 64)
    got = _vessels({"A": [piece_in_a], "B": [ship]})
    assert len(got) == 1 and got[0]["properties"]["length_m"] == pytest.approx(40.0)
    # 20-50: whole in A, which owns its centre (35); a piece in B, cut at B's edge (column 32)
    got = _vessels({"A": [_vessel(20, 50)], "B": [_vessel(32, 50)]})
    assert len(got) == 1 and got[0]["properties"]["length_m"] == pytest.approx(60.0)
    assert got[0]["properties"]["area_px"] == 180  # B's piece, inside the whole, is not added


def test_vessels_cut_by_a_border_without_overlap_are_merged_as_before() -> None:
    windows, owned = dict(WINDOWS), dict(OWNED)
    try:
        WINDOWS.update(A=(0, 0, 64, 48), B=(0, 48, 64, 48))
        OWNED.update(A=(0, 0, 64, 48), B=(0, 48, 64, 48))
        got = _vessels({"A": [_vessel(40, 48)], "B": [_vessel(48, 60)]})
    finally:
        WINDOWS.update(windows)
        OWNED.update(owned)
    assert len(got) == 1 and got[0]["properties"]["pieces"] == 2
    assert got[0]["properties"]["length_m"] == pytest.approx(40.0)


def test_the_configured_border_rule_is_the_one_the_merge_applies() -> None:
    """[score] border_rule reaches the merge (scripts/border_rules.py had to replace hil's merge to vary it)."""
    small, large = _vessel(40, 48), _vessel(48, 80)
    for piece, p in ((small, 0.9), (large, 0.2)):  # the small piece passes the stage's cut, the large one not
        piece["properties"].update(ship_probability=p, provisional_ship_probability=0.5)
    pieces = [small, large]
    kept = {rule: whole_vessels([dict(f) for f in pieces], CRS, 1e-3, border_rule=rule)
            for rule in ("largest", "any", "largest-else-passed")}
    assert kept["largest"] == [] and len(kept["any"]) == 1 and kept["any"][0]["properties"]["pieces"] == 2
    assert len(kept["largest-else-passed"]) == 1 and kept["largest-else-passed"][0]["properties"]["area_px"] == 48


def test_a_vessel_centred_on_the_ownership_line_comes_down_once() -> None:
    """36-60: its centre is on the line at column 48, which both owned parts' edges touch."""
    got = _vessels({"A": [_vessel(36, 60)], "B": [_vessel(36, 60)]})
    assert len(got) == 1 and got[0]["properties"]["pieces"] == 1 and got[0]["properties"]["area_px"] == 144
    # one owner on the line (the first tile whose owned part covers the centre, A): its verdict stands
    assert len(_vessels({"A": [_vessel(36, 60)], "B": []})) == 1 and _vessels({"A": [], "B": [_vessel(36, 60)]}) == []
