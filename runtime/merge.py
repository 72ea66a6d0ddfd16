"""Merge vessels that tile borders cut into pieces, on the ground side of the link.

Each tile is vectorised on board on its own, so a ship across a border comes down as two polygons
that share an edge. Merging needs neighbouring tiles, which the payload does not keep; the ground
(hil, or ``runtime infer`` over a whole scene) holds them all and merges here.
"""

from __future__ import annotations

from typing import Any

import shapely
from rasterio.crs import CRS
from shapely.geometry import mapping, shape

from runtime.measure import describe
from runtime.vectorize import BRIDGE_PX


#: What the payload leaves to the merge (:func:`runtime.vectorize.vectorize`), gone once it is applied.
_PROVISIONAL = ("provisional_min_area_px", "provisional_min_score", "provisional_ship_probability")


#: How the merge applies a second stage's cut (``provisional_ship_probability``) to a vessel some of
#: whose pieces a tile border cut, each judged by the stage on its own on board. Judged piece by
#: piece, a ship lost its failing pieces and came down cut short at the border; a piece's verdict is
#: the less sure the less of the vessel's shape and surroundings it holds. The default keeps every
#: piece the stage passed (the merge never drops what the payload alone would have delivered) and
#: was chosen among such rules on models/sar's validation split (docs/models.md, "Border pieces and
#: the second stage", ``scripts/border_rules.py``); the others are there to measure against it.
BORDER_RULES = {
    "largest-else-passed": "whole where its largest piece passes, else the pieces that pass",
    "piecewise": "the pieces that pass (as the payload judged them before 2026-12-05)",
    "any": "whole where any piece passes",
    "weighted": "whole where the area-weighted ship probability passes, else nothing",
    "largest": "whole where its largest piece passes, else nothing",
}


#: The rules that never drop a piece the stage passed: where the whole vessel falls under the other
#: cuts (min_area_px, min_score), those pieces still stand on their own.
KEEPS_PASSED = ("largest-else-passed", "piecewise", "any")


def _second_stage(features: list[dict[str, Any]], geoms: list[Any], members: list[int], largest: int,
                  cut: float, rule: str) -> tuple[list[int] | None, list[int]]:
    """The members of one vessel that stand under ``rule`` (:data:`BORDER_RULES`): all of them (the
    vessel whole), some (the pieces that passed), or None (the vessel dropped); and the pieces that
    passed where ``rule`` is one of :data:`KEEPS_PASSED` (else none)."""
    def p(i: int) -> float:
        return features[i]["properties"].get("ship_probability", 1.0)

    passed = [i for i in members if p(i) >= (features[i]["properties"].get("provisional_ship_probability") or 0.0)]
    if rule == "piecewise":
        whole = False
    elif rule == "any":
        whole = bool(passed)
    elif rule == "weighted":
        areas = [geoms[i].area for i in members]
        whole = sum(p(i) * a for i, a in zip(members, areas)) / (sum(areas) or 1.0) >= cut
    else:  # largest, largest-else-passed
        whole = p(largest) >= cut
    kept = passed if rule in KEEPS_PASSED else []
    return (members if whole else (kept or None)), kept


def merge_detections(features: list[dict[str, Any]], crs: CRS | None, tolerance: float = 0.0,
                     connectivity: int = 8, border_rule: str = "largest-else-passed") -> list[dict[str, Any]]:
    """Union polygons that touch (within ``tolerance`` map units) and describe each result anew.

    ``connectivity`` is the vectorisation's: with 4, pieces that meet only at a corner are two
    vessels, as the payload judged them, and only pieces sharing an edge (or overlapping) are joined.

    Each vessel is one Polygon: pieces meeting only at a corner are joined by a hair-thin bridge
    (:func:`_bridged`), as the payload joins an 8-connected component's pixels.
    Scores of merged pieces are averaged weighted by area, a second stage's ``ship_probability`` is
    that of the largest piece; ``pieces`` says how many were merged.
    A piece the payload kept only because a tile border cut it (``provisional_min_area_px``,
    :func:`runtime.vectorize.vectorize`) counts once merged: a vessel smaller than the largest such
    cut among its pieces is dropped, as the payload drops a whole component that small. Likewise a
    vessel with a piece kept under ``provisional_min_score`` is kept only if its whole (area-weighted)
    score reaches that cut, and one with a piece kept under ``provisional_ship_probability`` (the
    second stage's cut) as ``border_rule`` says (:data:`BORDER_RULES`; by default whole where its
    largest piece reaches the cut, else as the pieces that reach it). The second stage is applied first:
    where it leaves only the pieces that passed, those are judged by the other cuts among themselves,
    as the payload judged them, not with the failed pieces' pixels and scores; and where a vessel kept
    whole falls under those cuts, the pieces that passed still stand on their own under the rules that
    never drop a piece the stage passed (largest-else-passed, any, piecewise).

    Raises:
        ValueError: for a ``border_rule`` not in :data:`BORDER_RULES`, listing them.
    """
    if border_rule not in BORDER_RULES:
        raise ValueError(f"border_rule {border_rule!r}; valid: {list(BORDER_RULES)}")
    if not features:
        return []
    geoms = [shape(f["geometry"]) for f in features]
    # Edges of neighbouring tiles agree only to rounding; growing by a hair closes that gap,
    # and mitred joins keep the corners where they were when the growth is taken back.
    grown = [g.buffer(tolerance, join_style="mitre") if tolerance else g for g in geoms]
    tree = shapely.STRtree(grown)
    # Connected components of the "touches or overlaps" graph, by union-find over tree queries.
    parent = list(range(len(geoms)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    left, right = tree.query(grown, predicate="intersects")
    for i, j in zip(left.tolist(), right.tolist()):
        if connectivity == 4 and i != j and not _share_edge(grown[i], grown[j], tolerance):
            continue
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for i in range(len(geoms)):
        groups.setdefault(find(i), []).append(i)
    merged = []
    for members in groups.values():
        # the second stage's cut first, left to the ground for pieces a border cut (BORDER_RULES): where
        # the vessel stands only as the pieces that passed, they are judged by the other cuts among
        # themselves, as the payload judged them, not with the failed pieces' pixels and scores
        ship_cut = max((features[i]["properties"].get("provisional_ship_probability") or 0.0 for i in members),
                       default=0.0)
        largest = max(members, key=lambda i: geoms[i].area)
        passed = members
        if ship_cut:
            kept, passed = _second_stage(features, geoms, members, largest, ship_cut, border_rule)
            if kept is None:
                continue
            if kept != members:  # the pieces that passed, merged among themselves as the payload judged them
                merged += merge_detections([features[i] for i in kept], crs, tolerance, connectivity, "piecewise")
                continue
        if not _meets_cuts(features, geoms, members):
            # the whole vessel falls under min_area_px or min_score; the pieces the stage passed (a rule of
            # KEEPS_PASSED) may not
            if passed != members and passed:
                merged += merge_detections([features[i] for i in passed], crs, tolerance, connectivity, "piecewise")
            continue
        if len(members) == 1:
            feature = dict(features[members[0]])
            feature["properties"] = {k: v for k, v in feature["properties"].items() if k not in _PROVISIONAL}
            feature["properties"]["pieces"] = 1
            merged.append(feature)
            continue
        if tolerance:
            union = shapely.union_all([grown[i] for i in members]).buffer(-tolerance, join_style="mitre")
        else:
            union = shapely.union_all([geoms[i] for i in members])
        areas = [geoms[i].area for i in members]
        props = [features[i]["properties"] for i in members]
        if not isinstance(union, shapely.Polygon):  # pieces meeting only at a corner (8-connectivity)
            pixels = sum(p.get("area_px", 0) for p in props)
            union = _bridged(union, BRIDGE_PX * (sum(areas) / pixels if pixels else sum(areas)) ** 0.5)
        total = sum(areas) or 1.0
        # a second stage's verdict on the whole vessel, its largest piece's as the cut above read it:
        # every vessel of a model with a second stage carries it (docs/protocol.md), merged or not
        second = ({"ship_probability": float(features[largest]["properties"]["ship_probability"])}
                  if all("ship_probability" in p for p in props) else {})
        merged.append(
            {
                "type": "Feature",
                "geometry": mapping(union),
                "properties": {
                    "score": float(sum(p["score"] * a for p, a in zip(props, areas)) / total),
                    "max_score": float(max(p.get("max_score", p["score"]) for p in props)),
                    **second,
                    **describe(union, crs),
                    "area_px": int(sum(p.get("area_px", 0) for p in props)),
                    "pieces": len(members),
                },
            }
        )
    return merged


def _meets_cuts(features: list[dict[str, Any]], geoms: list[Any], members: list[int]) -> bool:
    """Whether a vessel of pieces ``members`` reaches the payload's cuts its border pieces left to the
    ground: ``provisional_min_area_px`` on its pixels, ``provisional_min_score`` on its whole
    (area-weighted) score."""
    cut = max((features[i]["properties"].get("provisional_min_area_px") or 0 for i in members), default=0)
    if cut and sum(features[i]["properties"].get("area_px", 0) for i in members) < cut:
        return False
    # the payload's min_score, left to the ground for pieces a border cut: on the whole vessel's score
    score_cut = max((features[i]["properties"].get("provisional_min_score") or 0.0 for i in members), default=0.0)
    if score_cut:
        weights = [geoms[i].area for i in members]
        whole = sum(features[i]["properties"]["score"] * a for i, a in zip(members, weights)) / (sum(weights) or 1.0)
        if whole < score_cut:
            return False
    return True


def _bridged(union: Any, width: float) -> shapely.Polygon:
    """One Polygon of the parts of ``union``: each joined to the nearest of those already joined by a
    bridge ``width`` wide (a hair: :data:`runtime.vectorize.BRIDGE_PX` of a pixel), as the payload
    joins the pixels of an 8-connected component that touch only at a corner (``_clean``).

    Why: pieces that meet only at a corner (a diagonal ship cut by a border right at a corner pixel)
    are one vessel under 8-connectivity, but their union is a MultiPolygon, which GeoJSON consumers
    (and :func:`runtime.measure.describe`) take for several shapes where the payload's own outlines
    give one Polygon per vessel. The bridge moves no measurement: it lies within the convex hull of
    the parts but for its hair width. Parts the merge joined across a rounding gap (within its
    ``tolerance``) are bridged the same way."""
    parts = sorted(getattr(union, "geoms", [union]), key=lambda g: g.area, reverse=True)
    joined, rest = parts[0], parts[1:]
    while rest:
        k = min(range(len(rest)), key=lambda i: joined.distance(rest[i]))
        bridge = shapely.shortest_line(joined, rest[k]).buffer(width, join_style="mitre")
        joined = shapely.union_all([joined, rest.pop(k), bridge])
    if not isinstance(joined, shapely.Polygon):  # never expected; the largest rather than a MultiPolygon
        joined = max(getattr(joined, "geoms", [joined]), key=lambda g: g.area)
    return joined


def _share_edge(a: Any, b: Any, tolerance: float) -> bool:
    """Whether two (grown) pieces meet along more than a corner: a corner of pieces grown by
    ``tolerance`` is a square 2 tolerance wide (perimeter 8 tolerance); a shared pixel edge is a
    strip at least a pixel long. Each part of where they meet is judged on its own: pieces that meet
    at two or more corners only (a bar across a border touching the two arms of a C) share no edge,
    though the corners' perimeters add up to more than one corner's."""
    meet = a.intersection(b)
    # 0 for a corner point at tolerance 0, a shared edge more
    return any(part.length > 12 * tolerance for part in getattr(meet, "geoms", [meet]))
