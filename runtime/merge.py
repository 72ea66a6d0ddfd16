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

from runtime.vectorize import describe


def merge_detections(features: list[dict[str, Any]], crs: CRS | None, tolerance: float = 0.0,
                     connectivity: int = 8) -> list[dict[str, Any]]:
    """Union polygons that touch (within ``tolerance`` map units) and describe each result anew.

    ``connectivity`` is the vectorisation's: with 4, pieces that meet only at a corner are two
    vessels, as the payload judged them, and only pieces sharing an edge (or overlapping) are joined.

    Scores of merged pieces are averaged weighted by area; ``pieces`` says how many were merged.
    A piece the payload kept only because a tile border cut it (``provisional_min_area_px``,
    :func:`runtime.vectorize.vectorize`) counts once merged: a vessel smaller than the largest such
    cut among its pieces is dropped, as the payload drops a whole component that small.
    """
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
        cut = max((features[i]["properties"].get("provisional_min_area_px") or 0 for i in members), default=0)
        if cut and sum(features[i]["properties"].get("area_px", 0) for i in members) < cut:
            continue
        # the payload's min_score, left to the ground for pieces a border cut: on the whole vessel's score
        score_cut = max((features[i]["properties"].get("provisional_min_score") or 0.0 for i in members), default=0.0)
        if score_cut:
            weights = [shape(features[i]["geometry"]).area for i in members]
            whole = (sum(features[i]["properties"]["score"] * a for i, a in zip(members, weights))
                     / (sum(weights) or 1.0))
            if whole < score_cut:
                continue
        if len(members) == 1:
            feature = dict(features[members[0]])
            feature["properties"] = {k: v for k, v in feature["properties"].items()
                                     if k not in ("provisional_min_area_px", "provisional_min_score")}
            feature["properties"]["pieces"] = 1
            merged.append(feature)
            continue
        if tolerance:
            union = shapely.union_all([grown[i] for i in members]).buffer(-tolerance, join_style="mitre")
        else:
            union = shapely.union_all([geoms[i] for i in members])
        areas = [geoms[i].area for i in members]
        props = [features[i]["properties"] for i in members]
        total = sum(areas) or 1.0
        merged.append(
            {
                "type": "Feature",
                "geometry": mapping(union),
                "properties": {
                    "score": float(sum(p["score"] * a for p, a in zip(props, areas)) / total),
                    "max_score": float(max(p.get("max_score", p["score"]) for p in props)),
                    **describe(union, crs),
                    "area_px": int(sum(p.get("area_px", 0) for p in props)),
                    "pieces": len(members),
                },
            }
        )
    return merged


def _share_edge(a: Any, b: Any, tolerance: float) -> bool:
    """Whether two (grown) pieces meet along more than a corner: a corner of pieces grown by
    ``tolerance`` is a square 2 tolerance wide (perimeter 8 tolerance); a shared pixel edge is a
    strip at least a pixel long."""
    meet = a.intersection(b)
    return meet.length > 12 * tolerance  # 0 for a corner point at tolerance 0, a shared edge more
