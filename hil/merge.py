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
from runtime.vectorize import _geojson, describe


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


def whole_vessels(pieces: list[dict[str, Any]], crs: CRS | None, tolerance: float,
                  connectivity: int = 8) -> list[dict[str, Any]]:
    """Touching pieces as one vessel each (``runtime.merge.merge_detections``), with 4-connectivity
    only pieces that share an edge."""
    return merge_detections(pieces, crs, tolerance=tolerance, connectivity=connectivity)


__all__ = ["clip_to_owned", "owned_box", "whole_vessels"]
