"""Scores: pixel IoU per class, and object-level precision, recall and F1 by polygon matching."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from flightsim.sources.base import areal_part
from hil.merge import owned_box


#: Pixel counts of one or several images: intersection and union of each class.
COUNTS = ("inter_v", "union_v", "inter_b", "union_b")


def pixel_counts(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Intersections and unions of the vessel and background classes, to pool over several images."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    return {
        "inter_v": int(np.count_nonzero(pred & truth)), "union_v": int(np.count_nonzero(pred | truth)),
        "inter_b": int(np.count_nonzero(~pred & ~truth)), "union_b": int(np.count_nonzero(~pred | ~truth)),
    }


def ious(counts: dict[str, int]) -> dict[str, float]:
    """IoU of the vessel class, of the background, and their mean (mIoU), from pixel counts (of one
    image, or summed over several: the project's one definition of the pixel scores)."""
    # A class absent from both prediction and truth is perfectly predicted.
    vessel_iou = counts["inter_v"] / counts["union_v"] if counts["union_v"] else 1.0
    background_iou = counts["inter_b"] / counts["union_b"] if counts["union_b"] else 1.0
    return {"vessel_iou": vessel_iou, "background_iou": background_iou, "miou": (vessel_iou + background_iou) / 2}


def pixel_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU of the vessel class, of the background, and their mean (mIoU)."""
    return ious(pixel_counts(pred, truth))


def precision_recall_f1(tp: int, n_predicted: int, n_truth: int) -> tuple[float, float, float]:
    """Object precision, recall and F1 from counts, with the rules for empty sets: nothing there
    and nothing found is perfect; false alarms on an empty scene are precision 0; ships missed
    with nothing claimed are recall 0 and precision 0."""
    precision = tp / n_predicted if n_predicted else (1.0 if not n_truth else 0.0)
    recall = tp / n_truth if n_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def summed_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    """Pixel counts of several images added up (what :func:`ious` of a set is computed from)."""
    return {k: sum(x[k] for x in counts) for k in COUNTS}


def pooled_scores(counts: list[dict[str, int]], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Pixel IoUs over all pixels of several images, and P/R/F1 over all their vessels together."""
    c = summed_counts(counts)
    tp = sum(o["true_positives"] for o in objects)
    n_pred = sum(o["n_predicted"] for o in objects)
    n_truth = sum(o["n_truth"] for o in objects)
    precision, recall, f1 = precision_recall_f1(tp, n_pred, n_truth)
    return {**ious(c), "precision": precision, "recall": recall, "f1": f1, "true_positives": tp,
            "false_positives": n_pred - tp, "false_negatives": n_truth - tp, "n_predicted": n_pred, "n_truth": n_truth}


def areal(geometries: list[BaseGeometry]) -> list[BaseGeometry]:
    """``geometries`` made valid, each reduced to its areal part (an empty polygon if it has none).

    GEOS refuses an overlay (intersection) of an invalid polygon, a self-intersecting "bowtie"
    say, with a GEOSException: one such outline, in the truth or among the detections, would lose
    a whole run at scoring. make_valid keeps the area of each lobe; the lines and points it may
    leave (a spike, a collapsed ring) cover nothing, so they are dropped and cannot count in an IoU.
    """
    arr = np.asarray(geometries, dtype=object)
    bad = ~shapely.is_valid(arr)
    if not bad.any():
        return list(geometries)
    out = list(geometries)
    for i in np.flatnonzero(bad).tolist():
        fixed = areal_part(out[i])
        out[i] = shapely.Polygon() if fixed is None else fixed
    return out


def within(geometries: list[BaseGeometry], region: BaseGeometry) -> list[BaseGeometry]:
    """The parts of ``geometries`` inside ``region`` (a scene's footprint), in order; one with no
    area inside is left out. A truth outline beyond the image cannot be seen, so it cannot be
    found: the pixel scores ignore it (the truth mask is rasterised on the image's grid), and the
    object scores must too, or it is a miss (or, half outside, a match by its visible half only)."""
    out = []
    for g in areal(list(geometries)):
        if region.contains(g):
            out.append(g)
            continue
        part = areal_part(g.intersection(region))
        if part is not None and part.area > 0:
            out.append(part)
    return out


def scored_truth(sample: Any) -> list[BaseGeometry]:
    """The true vessels of ``sample`` (a :class:`flightsim.sources.base.Sample`) that the object F1
    counts: each outline's part inside the image (:func:`within`), an outline wholly outside it left
    out. The rig scores against these, and the second stage's fit (search.discriminate) labels its
    candidates against the same: matched against the raw outlines, a ship whose box ran past the image
    edge was a false alarm there and a hit here, and a bow-tie outline stopped the fit."""
    return within(sample.vessels or [], owned_box(sample.transform, (0, 0, sample.height, sample.width)))


#: How far under ``min_iou`` a computed IoU may fall and still count: the rounding of map coordinates,
#: done where they are (at longitude 150 a double's step is 3e-14 degrees, a part in 1e8 of a 0.4 m
#: pixel), before :func:`_local` moves them. 1e-9 missed 1-pixel-wide vessels on such grids by 2e-9.
IOU_SLACK = 1e-7


def _local(pred: list[BaseGeometry], truth: list[BaseGeometry]) -> tuple[list[BaseGeometry], list[BaseGeometry]]:
    """Both sets moved together so that their lower-left corner is the origin (an IoU is unchanged
    by a shift): areas of outlines a few metres wide at eastings of 600 km, or of 1e-5 degree
    pixels at 50 degrees, lose up to a part in 1e10 to rounding where they are."""
    both = np.asarray([*pred, *truth], dtype=object)
    x0, y0 = shapely.total_bounds(both)[:2]
    if not (np.isfinite(x0) and np.isfinite(y0)):  # nothing with a vertex
        return pred, truth
    moved = shapely.transform(both, lambda c: c - (x0, y0)).tolist()
    return moved[:len(pred)], moved[len(pred):]


#: ``[score] match_shape``: what a detection and a true vessel are matched as. ``outline``: their
#: polygons (the default: the payload reports outlines, and SSDD and HRSID draw them). ``box``: the
#: axis-aligned boxes around both, as detection benchmarks score data annotated with boxes only;
#: a ship six to eight times as long as wide, drawn at 45 degrees, fills a fifth to a quarter of its
#: box, so matched against a box truth its outline misses at IoU 0.5 though it is found.
MATCH_SHAPES = ("outline", "box")


def check_match_shape(match_shape: Any) -> str:
    """``match_shape`` if it is one of :data:`MATCH_SHAPES`; a ValueError listing them otherwise."""
    if match_shape not in MATCH_SHAPES:
        raise ValueError(f"[score] match_shape {match_shape!r}; valid: {list(MATCH_SHAPES)}")
    return str(match_shape)


def as_matched(geometries: list[BaseGeometry], match_shape: str) -> list[BaseGeometry]:
    """``geometries`` as ``match_shape`` (:data:`MATCH_SHAPES`) compares them: unchanged, or each
    replaced by its axis-aligned bounding box (an empty one left empty)."""
    if check_match_shape(match_shape) == "outline":
        return geometries
    return [g if g.is_empty else shapely.box(*g.bounds) for g in geometries]


def boxes_only(truth: list[BaseGeometry]) -> bool:
    """Whether every true vessel of a sample (at least one) is an axis-aligned rectangle: truth
    annotated with boxes, against which outlines are matched unfairly (``match_shape = "box"``)."""
    return bool(truth) and all(
        not g.is_empty and abs(shapely.box(*g.bounds).area - g.area) <= 1e-6 * g.area for g in truth)


def match_objects(pred: list[BaseGeometry], truth: list[BaseGeometry], min_iou: float) -> dict[str, Any]:
    """Greedy one-to-one matching by polygon IoU, best pairs first; a pair counts at IoU >= min_iou.

    Invalid polygons on either side are matched by their valid areal form (:func:`areal`), so one
    bad outline cannot stop the scoring of the rest.

    Outlines on a pixel grid have areas in whole pixels, so an IoU of exactly 0.5 is common for small
    ships (87 of 174 px, say). It is computed near the origin and compared with a slack of
    :data:`IOU_SLACK`, under the least step of a ratio of pixel counts (1 / (2 x union) from 0.5) for
    any union under 5,000,000 px, so that such a pair counts whatever the georeference: in map units
    of 0.3 m, or of 1e-5 degrees,
    it came out 0.4999999999 or 0.5000000001 by rounding alone, a match in pixel units and a miss
    on the same scene georeferenced.

    Greedy gives the most matches at a ``min_iou`` of 0.5 or more wherever the detections are
    disjoint (one merged polygon per vessel) and so are the truths (one per mask component or
    label): then a truth can pass 0.5 with two detections only by each being exactly half of it,
    and one detection with two truths only by being their union, and either way the pair first
    taken is as good as any. Overlapping truth outlines (boxes drawn over a harbour) can make it
    one short, in ties at exactly 0.5 only; so can a ``[score] match_iou`` under 0.5.
    """
    pairs: list[tuple[float, int, int]] = []
    if pred and truth:
        pred, truth = _local(areal(pred), areal(truth))
        tree = shapely.STRtree(truth)
        left, right = tree.query(pred, predicate="intersects")
        for i, j in zip(left.tolist(), right.tolist()):
            inter = pred[i].intersection(truth[j]).area
            union = pred[i].area + truth[j].area - inter
            if union > 0 and inter / union >= min_iou - IOU_SLACK:
                pairs.append((min(inter / union, 1.0), i, j))
    pairs.sort(reverse=True)
    used_p: set[int] = set()
    used_t: set[int] = set()
    ious = []
    matched: list[tuple[int, int]] = []
    for iou, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            ious.append(iou)
            matched.append((i, j))
    tp = len(ious)
    precision, recall, f1 = precision_recall_f1(tp, len(pred), len(truth))
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "true_positives": tp, "false_positives": len(pred) - tp, "false_negatives": len(truth) - tp,
        "n_predicted": len(pred), "n_truth": len(truth),
        "matched_mean_iou": float(np.mean(ious)) if ious else None,
        "matched_indices": sorted(used_p),
        "matched_pairs": matched,
    }


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    arr = np.asarray(values_ms)
    return {
        "p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean()), "max": float(arr.max()),
    }
