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


#: What the payload leaves to the merge (:func:`runtime.vectorize.vectorize`), gone once it is applied.
_PROVISIONAL = ("provisional_min_area_px", "provisional_min_score", "provisional_ship_probability")


def merge_detections(features: list[dict[str, Any]], crs: CRS | None, tolerance: float = 0.0,
                     connectivity: int = 8) -> list[dict[str, Any]]:
    """Union polygons that touch (within ``tolerance`` map units) and describe each result anew.

    ``connectivity`` is the vectorisation's: with 4, pieces that meet only at a corner are two
    vessels, as the payload judged them, and only pieces sharing an edge (or overlapping) are joined.

    Scores of merged pieces are averaged weighted by area, a second stage's ``ship_probability`` is
    that of the largest piece; ``pieces`` says how many were merged.
    A piece the payload kept only because a tile border cut it (``provisional_min_area_px``,
    :func:`runtime.vectorize.vectorize`) counts once merged: a vessel smaller than the largest such
    cut among its pieces is dropped, as the payload drops a whole component that small. Likewise a
    vessel with a piece kept under ``provisional_min_score`` is kept only if its whole (area-weighted)
    score reaches that cut, and one with a piece kept under ``provisional_ship_probability`` (the
    second stage's cut) whole only if its largest piece's ship probability reaches that cut, and
    otherwise as the pieces that reach it.
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
        # and the second stage's cut, left to the ground for pieces a border cut. Judged piece by piece,
        # a ship lost its failing pieces and came down cut short at the border. The vessel comes down
        # whole where its largest piece (the one with the most of its shape and surroundings) passes;
        # else the pieces that passed come down as the payload judged them, so the merge never drops
        # a piece the stage passed. Chosen on models/sar's validation split among the rules that keep
        # every passed piece (docs/models.md, "Border pieces and the second stage").
        ship_cut = max((features[i]["properties"].get("provisional_ship_probability") or 0.0 for i in members),
                       default=0.0)
        largest = max(members, key=lambda i: geoms[i].area)
        if ship_cut and features[largest]["properties"].get("ship_probability", 0.0) < ship_cut:
            passed = [features[i] for i in members if features[i]["properties"].get("ship_probability", 1.0)
                      >= (features[i]["properties"].get("provisional_ship_probability") or 0.0)]
            # none of them is the largest, so this ends: they merge among themselves, whole where they meet
            merged += merge_detections(passed, crs, tolerance, connectivity) if passed else []
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


def _share_edge(a: Any, b: Any, tolerance: float) -> bool:
    """Whether two (grown) pieces meet along more than a corner: a corner of pieces grown by
    ``tolerance`` is a square 2 tolerance wide (perimeter 8 tolerance); a shared pixel edge is a
    strip at least a pixel long. Each part of where they meet is judged on its own: pieces that meet
    at two or more corners only (a bar across a border touching the two arms of a C) share no edge,
    though the corners' perimeters add up to more than one corner's."""
    meet = a.intersection(b)
    # 0 for a corner point at tolerance 0, a shared edge more
    return any(part.length > 12 * tolerance for part in getattr(meet, "geoms", [meet]))
