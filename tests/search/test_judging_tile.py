"""The second stage's training row for a vessel comes from the tile whose verdict decides it in flight
(``search.discriminate._judging_tile``), checked against the ground's own merge: pieces cut by tile
borders go through ``hil.merge.tile_pieces`` and ``whole_vessels`` as in ``hil run``, and the vessel
comes down whole exactly when the chosen tile's piece passes the stage's cut."""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from shapely.geometry import shape

from flightsim.tiles import owned_windows, tile_grid
from hil.merge import owned_box, tile_pieces, whole_vessels
from runtime.vectorize import tile_borders, vectorize
from search.discriminate import _judging_tile, _tile_view

CUT = 0.5


def _bent_vessel() -> np.ndarray:
    """An L across three 64 px tiles: its centroid falls off it, in the tile holding its short arm
    (228 px), while the tile above holds its largest piece (256 px)."""
    burnt = np.zeros((128, 128), bool)
    burnt[0:111, 60:64] = True
    burnt[100:104, 64:121] = True
    return burnt


def _merged(burnt: np.ndarray, grid: list[tuple[int, int, int, int]], passing: tuple[int, int, int, int]) -> list:
    """The vessels the ground makes of ``burnt`` cut by ``grid`` when only the piece seen by the tile
    ``passing`` passes the second stage (each tile's piece as the payload vectorises it)."""
    identity = Affine.identity()
    tiles = []
    for window, owned in zip(grid, owned_windows(grid)):
        row, col, h, w = window
        prob = burnt[row:row + h, col:col + w].astype(np.float32)
        if not prob.any():
            continue
        features = vectorize(prob, 0.5, Affine.translation(col, row), None, min_area_px=1,
                             borders=tile_borders(list(window), (h, w), (h, w)))
        for f in features:
            f["properties"].update(ship_probability=0.9 if window == passing else 0.1,
                                   provisional_ship_probability=CUT)
        tiles.append((features, owned_box(identity, window), owned_box(identity, owned)))
    scene = owned_box(identity, (0, 0, *burnt.shape))
    return whole_vessels(tile_pieces(tiles, scene, None, 1.0), None, 0.25)


def test_a_cut_vessel_is_judged_on_the_tile_of_its_largest_piece_as_the_merge_judges_it() -> None:
    burnt = _bent_vessel()
    grid = tile_grid(*burnt.shape, 64)
    owned = owned_windows(grid)
    chosen = _judging_tile(burnt, grid, owned)
    assert chosen == (0, 0, 64, 64)
    # rows version 2 took the centroid's tile, whose piece does not decide
    assert _tile_view(burnt, grid, owned) == (64, 64, 64, 64)
    whole = _merged(burnt, grid, chosen)
    assert len(whole) == 1 and shape(whole[0]["geometry"]).area == burnt.sum()
    # the centroid's piece passing alone: the largest fails, and the merge keeps only that piece
    partial = _merged(burnt, grid, (64, 64, 64, 64))
    assert sum(shape(f["geometry"]).area for f in partial) < burnt.sum()


def test_a_vessel_one_tile_saw_whole_is_judged_there() -> None:
    """With overlap, a vessel cut by one tile's border but whole in its neighbour is that neighbour's."""
    burnt = np.zeros((128, 128), bool)
    burnt[52:71, 10:14] = True  # the first tile (rows 0-63) cuts it; the second (rows 48-111) holds it
    grid = tile_grid(*burnt.shape, 64, overlap=16)
    chosen = _judging_tile(burnt, grid, owned_windows(grid))
    assert chosen == (48, 0, 64, 64)
    whole = _merged(burnt, grid, chosen)
    assert len(whole) == 1 and shapely.equals(shape(whole[0]["geometry"]).normalize(),
                                              shapely.box(10, 52, 14, 71).normalize())


def test_a_vessel_inside_one_tile_is_that_tiles() -> None:
    burnt = np.zeros((128, 200), bool)
    burnt[10:20, 100:110] = True
    grid = tile_grid(128, 200, 64)
    assert _judging_tile(burnt, grid, owned_windows(grid)) == (0, 64, 64, 64)
