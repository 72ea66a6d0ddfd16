"""Vectorisation: a tile's vessel-probability map becomes GeoJSON polygons with ship measurements.

The model gives a probability per pixel; downlink wants a few hundred bytes per vessel, so each
connected component above the threshold becomes one polygon in the tile's CRS, described by its
score and by the length, width and heading of its minimum rotated rectangle (:mod:`runtime.measure`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import rasterio.crs
import rasterio.features
import shapely
from affine import Affine
from shapely.affinity import affine_transform

from runtime.candidate_features import tile_features
from runtime.discriminate import SecondStage
from runtime.measure import describe

CONNECTIVITIES = (4, 8)

# Width, in pixels, of the bridge that joins the pieces of an 8-connected component touching only
# at corners: wide enough for GEOS to see one polygon, far too thin to change any measurement.
BRIDGE_PX = 1e-4


def vectorize(
    prob: np.ndarray,
    threshold: float,
    transform: Affine,
    crs: rasterio.crs.CRS | None,
    *,
    min_area_px: int = 4,
    simplify_px: float = 0.0,
    connectivity: int = 8,
    valid: tuple[int, int] | None = None,
    min_score: float = 0.0,
    image: np.ndarray | None = None,
    discriminator: SecondStage | None = None,
    borders: tuple[bool, bool, bool, bool] = (False, False, False, False),
) -> list[dict[str, Any]]:
    """Turn one tile's probability map into GeoJSON Feature dicts, one per vessel.

    Args:
        prob: (H, W) vessel probabilities in [0, 1] (not checked: it would cost a pass per tile).
        threshold: pixels with ``prob >= threshold`` are vessel; must lie in (0, 1).
        transform: pixel-to-map affine transform of the tile (rasterio convention).
        crs: the tile's CRS, or None for an ungeoreferenced pixel grid (see :func:`describe`).
        min_area_px: components with fewer pixels are noise and are dropped.
        simplify_px: Douglas-Peucker tolerance in pixels; 0 keeps the raster outline. A component
            touching one of ``borders`` keeps its raster outline, so that it still meets its
            neighbour's piece along the border for the ground's merge. From half a pixel up, two
            vessels a pixel apart may come out touching, and a ground that merges takes them for
            one: a serving runtime refuses such a value
            (:func:`runtime.settings.check_serving_simplify`); called directly, the caller's choice.
        connectivity: 4 or 8, the pixel neighbourhood that joins pixels into one vessel.
        valid: (h, w) when only the top-left h x w of ``prob`` is image and the rest is padding
            added to reach the model's input size; the padding is ignored.
        min_score: components whose mean probability (their ``score``) is below this are dropped:
            a detector's confidence cut, on top of the per-pixel ``threshold``.
        image: the tile's counts, (bands, H, W) or (H, W), aligned with ``prob``; needed by
            ``discriminator`` (the contrast of each component against the clutter around it).
        discriminator: drops components it gives a ship probability below its cut
            (:mod:`runtime.discriminate`); kept components report it as ``ship_probability``. A
            component touching one of ``borders`` is kept whatever its probability, with
            ``provisional_ship_probability`` (the cut): the merge applies the cut to the whole vessel
            (:data:`runtime.merge.BORDER_RULES`).
        borders: (top, left, bottom, right): which edges of the (valid) map are tile borders
            with more of the scene beyond them. A component touching one may be a piece of a vessel
            the ground merges with its neighbour's, so ``min_area_px`` is not applied to it here: it
            is kept with ``provisional_min_area_px`` for the merge to apply
            (:func:`runtime.merge.merge_detections`).

    Returns:
        Features whose geometry is a Polygon in map units of ``transform``/``crs`` and whose
        properties are ``score`` (mean probability of the component's pixels), ``max_score``,
        ``area_px`` and the measurements of :func:`describe`; all plain Python numbers, so they
        pass ``json.dumps(allow_nan=False)``.

    Raises:
        ValueError: on a prob that is not 2-D, a threshold outside (0, 1), a connectivity other
            than 4 or 8, a negative min_area_px or simplify_px, a min_score outside [0, 1), a
            ``valid`` outside prob, or a discriminator without an image of prob's size.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob must be 2-D (H, W); got shape {prob.shape}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in the open interval (0, 1); got {threshold}")
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES}; got {connectivity}")
    if min_area_px < 0 or simplify_px < 0:
        raise ValueError(
            f"min_area_px and simplify_px must be >= 0; got {min_area_px}, {simplify_px}"
        )
    if not 0.0 <= min_score < 1.0:
        raise ValueError(f"min_score must lie in [0, 1); got {min_score}")
    if valid is not None:
        h, w = valid
        if not (0 <= h <= prob.shape[0] and 0 <= w <= prob.shape[1]):
            raise ValueError(f"valid must be (h, w) within prob's shape {prob.shape}; got {valid}")
        prob = prob[:h, :w]  # a view: the crop keeps the origin, so the transform still holds
    if discriminator is not None:
        if image is None or image.shape[-2] < prob.shape[0] or image.shape[-1] < prob.shape[1]:
            raise ValueError(f"a discriminator needs the tile's image covering prob {prob.shape}; got "
                             f"{None if image is None else image.shape}")
        image = image[..., :prob.shape[0], :prob.shape[1]]

    mask = prob >= threshold
    # Most sea tiles hold no vessel; leave before any GDAL call.
    if not mask.any():
        return []

    # GDAL's polygonize costs in proportion to the raster it scans, and a tile usually holds one
    # or two ships, so scan only the box around the vessel pixels. The window's translation
    # keeps the outlines in the pixel coordinates of the whole tile.
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    sub_mask = np.ascontiguousarray(mask[window])
    to_tile = Affine.translation(int(cols[0]), int(rows[0]))
    # No mask band: GDAL then traces the background too (value 0, skipped), which costs less than
    # the second in-memory raster a mask needs. Each call's fixed cost (in-memory datasets, a GDAL
    # environment) is most of a small tile's vectorisation, so this is the one GDAL call per tile.
    outlines = [
        geom
        for geom, value in rasterio.features.shapes(sub_mask.view(np.uint8), connectivity=connectivity,
                                                    transform=to_tile)
        if value
    ]

    candidates = []
    for outline in outlines:
        traced = _polygon(outline)
        poly = _clean(traced)
        if poly is None:
            continue
        if len(outlines) == 1 and poly is traced:
            # The window is the box around every vessel pixel, and here they form one valid
            # outline: its pixels are the window's mask, without a point-in-polygon test.
            row0, col0, inside = int(rows[0]), int(cols[0]), sub_mask
        else:
            row0, col0, inside = _pixels_inside(poly)
        count = int(inside.sum())
        provisional = None
        at_border = bool(count) and _touches(borders, row0, col0, inside.shape, prob.shape)
        if count < max(min_area_px, 1):
            if not at_border:
                continue
            provisional = max(min_area_px, 1)  # a piece cut by a border: the merge judges the whole
        vals = prob[row0:row0 + inside.shape[0], col0:col0 + inside.shape[1]][inside].astype(np.float64)
        score = float(vals.sum() / count)
        # On the reported score, as search.evaluate.object_scores compares it: of the whole vessel,
        # so a piece cut by a border comes down with the cut for the merge to apply to the whole.
        provisional_score = min_score if at_border and min_score > 0 else None
        if score < min_score and provisional_score is None:
            continue
        candidates.append(_Candidate(poly, row0, col0, inside, count, score, float(vals.max()), at_border,
                                     provisional, provisional_score))

    ship_probabilities: list[float | None] = [None] * len(candidates)
    if discriminator is not None and candidates:
        # one call for the tile's candidates: the trees' cost is mostly per call, not per candidate
        rows = tile_features(image, [(c.inside, c.row0, c.col0, c.score, c.max_score) for c in candidates],
                             discriminator.ring_px)
        ship_probabilities = discriminator.probability(rows).tolist()

    # shapely's order is [a, b, d, e, xoff, yoff]; rasterio's Affine is (a, b, c, d, e, f).
    coeffs = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    features = []
    for c, ship_probability in zip(candidates, ship_probabilities):
        provisional_ship = None
        if discriminator is not None:
            # Likewise the second stage's cut: judged piece by piece, one piece of a vessel a border cuts
            # could be dropped and the rest kept, a vessel cut short at the border on the ground; the merge
            # applies the cut to the vessel (runtime.merge.BORDER_RULES).
            provisional_ship = discriminator.cut if c.at_border else None
            if ship_probability < discriminator.cut and provisional_ship is None:
                continue
        # Not a piece a border cut: simplified, its edge along the border could leave the border line,
        # and the ground's merge would then take the pieces of one vessel for two.
        poly = c.poly.simplify(simplify_px, preserve_topology=True) if simplify_px > 0 and not c.at_border else c.poly
        map_poly = affine_transform(poly, coeffs)
        props: dict[str, Any] = {
            "score": c.score,
            "max_score": c.max_score,
            "area_px": c.count,
        }
        if ship_probability is not None:
            props["ship_probability"] = ship_probability
        if c.provisional is not None:
            props["provisional_min_area_px"] = c.provisional
        if c.provisional_score is not None:
            props["provisional_min_score"] = c.provisional_score
        if provisional_ship is not None:
            props["provisional_ship_probability"] = provisional_ship
        props.update(describe(map_poly, crs))
        features.append({"type": "Feature", "geometry": _geojson(map_poly), "properties": props})
    return features


class _Candidate(NamedTuple):
    """A component that passed the size and score tests, before the second stage."""

    poly: shapely.Polygon  #: its outline, in tile pixels
    row0: int  #: where ``inside``'s box lies in the tile
    col0: int
    inside: np.ndarray  #: its pixels, cropped to its box
    count: int
    score: float
    max_score: float
    at_border: bool
    provisional: int | None  #: the smallest size the merge will hold the whole vessel to
    provisional_score: float | None


def _touches(borders: tuple[bool, bool, bool, bool], row0: int, col0: int, box: tuple[int, int],
             shape: tuple[int, int]) -> bool:
    """Whether a component whose bounding box is ``box`` at (row0, col0) reaches a map edge that
    ``borders`` (top, left, bottom, right) calls a tile border."""
    top, left, bottom, right = borders
    return ((top and row0 == 0) or (left and col0 == 0) or (bottom and row0 + box[0] >= shape[0])
            or (right and col0 + box[1] >= shape[1]))


def tile_borders(window: Any, valid: tuple[int, int], padded_to: tuple[int, int]) -> tuple[bool, bool, bool, bool]:
    """Which edges of a tile's valid region have more of the scene beyond them, from its header's
    ``window`` (row, col, h, w in the scene) and its size against the model input it was padded to:
    a top or left edge at row or column 0 is the scene's. A bottom or right edge may be either (a
    tile shorter than the input may be the last of its column, or one of tiles cut smaller than
    the input), and is taken for a border (a piece kept there costs a few bytes; one dropped loses
    part of a vessel). Without a window the tile is a scene of its own: no borders."""
    if not (isinstance(window, (list, tuple)) and len(window) == 4):
        return (False, False, False, False)
    row, col = int(window[0]), int(window[1])
    # A tile shorter than the input is not always the last of its column: a sender may cut tiles
    # smaller than the model's input (flightsim stream --tile-size), and then every tile is. The
    # header does not give the scene's size, so a bottom or right edge is always taken for a border.
    return (row > 0, col > 0, True, True)


def _geojson(poly: shapely.Polygon) -> dict[str, Any]:
    """``shapely.geometry.mapping(poly)``, built from coordinate arrays.

    mapping() walks the vertices one Python object at a time, which was a third of the time
    spent on a tile with a few ships.
    """
    rings = [poly.exterior, *poly.interiors]
    coords = tuple(tuple(map(tuple, shapely.get_coordinates(r).tolist())) for r in rings)
    return {"type": "Polygon", "coordinates": coords}


def _pixels_inside(poly: shapely.Polygon) -> tuple[int, int, np.ndarray]:
    """(row, col, box): the pixels of a component outline given in tile pixel coordinates.

    The outline runs along pixel edges, so a pixel belongs to it exactly when its centre lies
    inside; ``box`` covers the outline's bounding box, whose top-left pixel is (row, col). One
    point-in-polygon test per pixel of the box replaces burning the outlines back into a label
    raster, which was a second GDAL call per tile.
    """
    # Bounds are whole pixels, give or take the hair-thin bridges of _clean.
    x0, y0, x1, y1 = (int(round(v)) for v in poly.bounds)
    shapely.prepare(poly)
    # Pixel centres as a row of x against a column of y: contains_xy broadcasts them to the box.
    return y0, x0, shapely.contains_xy(poly, np.arange(x0, x1) + 0.5, (np.arange(y0, y1) + 0.5)[:, None])


def _polygon(geojson: dict[str, Any]) -> shapely.Polygon:
    """A GeoJSON Polygon dict as shapely; arrays, since shape() builds it one vertex at a time."""
    shell, *holes = (np.asarray(ring, dtype=np.float64) for ring in geojson["coordinates"])
    return shapely.Polygon(shell, holes)


def _clean(poly: shapely.Polygon) -> shapely.Polygon | None:
    """Make a component's outline a single valid Polygon (None if it has no area).

    With 8-connectivity GDAL traces pixels that touch only at a corner as one self-touching ring,
    which GEOS calls invalid. Splitting it there would turn a thin diagonal ship into several tiny
    blobs that the area filter then drops, so the pieces are joined by a hair-thin bridge instead:
    a buffer of that width does it in one pass. (make_valid, then a union of its pieces, gave the
    same polygons at about 13 times the cost: 13 s of thread CPU instead of 1 s for a tile of
    uniform noise, ``scripts/host_time.py --worst``.)
    """
    if poly.is_valid:
        return poly
    joined = poly.buffer(BRIDGE_PX, join_style="mitre")
    if isinstance(joined, shapely.Polygon):
        return None if joined.is_empty else joined
    # Pieces that do not touch cannot come from one component; keep the largest, never crash.
    return max(getattr(joined, "geoms", []), key=lambda g: g.area, default=None)
