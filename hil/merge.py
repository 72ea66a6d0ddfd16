"""Whole vessels from tiles: each tile's detections clipped to the part it answers for, then merged.

Where the merge lives, and why: on the ground, here in hil, around ``runtime.merge.merge_detections``.
The payload vectorises each tile on its own and keeps no neighbours (a Myriad X has no memory to
spare and a tile's result must go down as soon as it is ready), so only the ground holds every
tile of a scene. With overlapping tiles a vessel near a border is seen by two tiles; keeping, from
each tile, only its *owned* window (:func:`flightsim.tiles.owned_windows`: up to half-way into each
overlap) makes the pieces of one vessel abut exactly along the ownership line, and the runtime's
merge (union of touching pieces, measured anew) then gives one polygon with the vessel's whole
length. Pieces from tile centres are the better ones: a CNN sees them with context on every side.
``runtime.merge`` itself is unchanged; the clipping is what overlap needed on top of it.
"""

from __future__ import annotations

from typing import Any

import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import shape

from runtime.merge import merge_detections
from runtime.measure import describe
from runtime.vectorize import _geojson


def owned_box(transform: Affine, owned: tuple[int, int, int, int]) -> shapely.Polygon:
    """The map-coordinate polygon of a pixel window (row, col, h, w) of a scene."""
    row, col, h, w = owned
    corners = [transform * (c, r) for c, r in ((col, row), (col + w, row), (col + w, row + h), (col, row + h))]
    return shapely.Polygon(corners)


def clip_to_owned(features: list[dict[str, Any]], region: shapely.Polygon, crs: CRS | None,
                  pixel_area: float) -> list[dict[str, Any]]:
    """The parts of ``features`` inside ``region``, re-measured where the clip changed them."""
    out = []
    for f in features:
        geom = shape(f["geometry"])
        if region.contains(geom):
            out.append(f)
            continue
        part = geom.intersection(region)
        for piece in getattr(part, "geoms", [part]):
            if not isinstance(piece, shapely.Polygon) or piece.area <= 0:
                continue
            props = {**f["properties"], **describe(piece, crs), "area_px": int(round(piece.area / pixel_area))}
            out.append({"type": "Feature", "geometry": _geojson(piece), "properties": props})
    return out


def tile_pieces(tiles: list[tuple[list[dict[str, Any]], shapely.Polygon, shapely.Polygon]], scene: shapely.Polygon,
                crs: CRS | None, pixel_area: float) -> list[dict[str, Any]]:
    """What each tile of a scene answers for, ready for :func:`whole_vessels`.

    ``tiles``: (features, window, owned) for each tile with a result, its window and its owned part
    as map polygons (:func:`owned_box`); ``scene``: the scene's. A feature that reaches one of its
    tile's borders (an edge with more of the scene beyond it) is a piece, clipped to the owned part
    (:func:`clip_to_owned`). One that does not is the vessel whole as that tile saw it, and is kept
    whole where its tile owns its centroid, or where the tile owning its centroid saw only a piece
    of it (the whole beats the piece, which is then dropped); where the owning tile saw it whole too,
    the owner's verdict stands and this copy goes. Clipped as a piece, a vessel lying inside an
    overlap and across its ownership line came down cut short wherever only one of its two tiles kept
    it (the payload judges each tile alone: its second stage or its minimum score can differ).
    Without overlap every tile owns its whole window, and nothing changes.
    """
    eps = 0.25 * pixel_area ** 0.5  # a quarter pixel: edges of neighbouring tiles agree to rounding
    outer = scene.boundary.buffer(eps)
    whole: list[tuple[int, shapely.Geometry, dict[str, Any]]] = []
    cut: list[tuple[int, dict[str, Any]]] = []
    inner = [window.boundary.difference(outer) for _, window, _ in tiles]  # the borders of each tile's pieces
    for k, (features, window, _) in enumerate(tiles):
        borders = inner[k]
        for f in features:
            geom = shape(f["geometry"])
            if not borders.is_empty and geom.distance(borders) <= eps:
                cut.append((k, f))
                continue
            # the first tile whose owned part covers the centre: one owner, even for a centre on an ownership line;
            # one strictly inside its own tile's part is that tile's (owned parts meet only on their edges), and
            # the scan over every tile is left to the few on a line or outside
            centre = geom.centroid
            owner = k if tiles[k][2].contains(centre) else next(
                (j for j in range(len(tiles)) if tiles[j][2].covers(centre)), None)
            if owner is None or owner == k:
                whole.append((k, geom, f))
            elif not _seen_whole(geom, tiles[owner][1], inner[owner], eps):  # the owner saw a piece: the whole wins
                # once: with overlap at a corner two other tiles may each have seen it whole (summed twice)
                if not any(j != k and j != owner and g.intersects(geom) for j, g, _ in whole):
                    whole.append((k, geom, f))
    pieces = [f for _, _, f in whole]
    for k, f in cut:
        for piece in clip_to_owned([f], tiles[k][2], crs, pixel_area):
            part = shape(piece["geometry"])
            if not any(j != k and geom.intersects(part) for j, geom, _ in whole):  # else a vessel seen whole
                pieces.append(piece)
    return pieces


def _seen_whole(geom: shapely.Geometry, window: shapely.Polygon, borders: shapely.Geometry, eps: float) -> bool:
    """Whether a tile of ``window`` saw ``geom`` whole: inside its window and off its ``borders`` (where
    it would be a piece of that tile's, as :func:`tile_pieces` sorts them); inside the window alone, a
    vessel in an overlap reaching the owner's border was taken for seen whole, and both copies went."""
    return window.buffer(eps).contains(geom) and (borders.is_empty or geom.distance(borders) > eps)


def whole_vessels(pieces: list[dict[str, Any]], crs: CRS | None, tolerance: float,
                  connectivity: int = 8, border_rule: str = "largest-else-passed") -> list[dict[str, Any]]:
    """Touching pieces as one vessel each (``runtime.merge.merge_detections``), with 4-connectivity
    only pieces that share an edge; a second stage's cut applied as ``border_rule`` says
    (``runtime.merge.BORDER_RULES``, hil's ``[score] border_rule``)."""
    return merge_detections(pieces, crs, tolerance=tolerance, connectivity=connectivity, border_rule=border_rule)


__all__ = ["clip_to_owned", "owned_box", "tile_pieces", "whole_vessels"]
