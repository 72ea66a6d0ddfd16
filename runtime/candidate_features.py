"""The features of a candidate vessel, which the second stage (:mod:`runtime.discriminate`) judges.

Classical SAR ship detection prescreens bright pixels and then discriminates each candidate by
features of the candidate and of the clutter around it. Here each of the network's components is
described by its scores, its size, the contrast of its pixels against a ring of clutter around it,
the wider neighbourhood it lies in (land and coast are bright and busy over tens of pixels; open
sea is dark and calm) and its shape (how much of its own spread it fills, how elongated it is, how
much of its box it covers: a hull is a filled, elongated blob, built-up land is ragged), in the
tile's own counts.

Features are computed in pixels and counts, never map units, so a model fitted on chips without a
georeference applies to a georeferenced scene alike. Counts below zero (a float tile in decibels)
get the same log features mirrored (:func:`_log1p`), not NaN. This runs on board for every
candidate, where each numpy call's fixed cost is most of the work on a box a few tens of pixels
across: the helpers below are numpy's own reductions written out, bit for bit, since the shipped
second stage was fitted on numpy's.
"""

from __future__ import annotations

import numpy as np

#: Every feature a second stage may use, in the order :func:`component_features` returns them.
FEATURES = ("score", "max_score", "log_area", "log_inside", "log_ring", "log_ring_std", "contrast",
            "log_inside_p90", "log_context", "log_context_std", "log_context_p90",
            "fill", "log_elongation", "extent")

#: Inner and outer radius (pixels) of the clutter ring: the inner gap keeps the ship's own
#: sidelobes and a loose outline out of the clutter estimate.
RING_PX = (2, 6)

#: How far (pixels) beyond the candidate's box the wide context reaches: land and coast are
#: properties of a neighbourhood tens of pixels across, which the narrow ring does not see.
CONTEXT_PX = 32


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square dilation by ``r`` pixels, separable: along each axis a pixel is set when any pixel
    within ``r`` of it is, an OR over a window of 2r + 1 grown by doubling (a few slices per axis
    instead of 2r + 1 shifted copies or a running count: this runs on board for every candidate,
    where each numpy call's fixed cost is most of the work on a box a few tens of pixels across)."""
    if r <= 0:
        return mask.copy()
    # past the box's size a wider window adds nothing: a manifest's huge ring_px must not allocate it
    r = min(r, max(mask.shape))
    h, w = mask.shape
    rows = np.zeros((h + 2 * r, w), bool)
    rows[r:r + h] = mask
    span = 1
    while span < 2 * r + 1:  # rows[i] is the OR of the padded rows i to i + span - 1
        step = min(span, 2 * r + 1 - span)
        rows, span = rows[:-step] | rows[step:], span + step
    out = np.zeros((h, w + 2 * r), bool)
    out[:, r:r + w] = rows
    span = 1
    while span < 2 * r + 1:
        step = min(span, 2 * r + 1 - span)
        out, span = out[:, :-step] | out[:, step:], span + step
    return out


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """``values.mean()`` and ``values.std()`` of a 1-D float64 array, bit for bit (numpy's own
    reductions and arithmetic, in its order), without the generic wrappers' cost per call."""
    mean = np.add.reduce(values) / values.size
    deviations = values - mean
    np.multiply(deviations, deviations, out=deviations)
    return float(mean), float(np.sqrt(np.add.reduce(deviations) / values.size))


def component_features(image: np.ndarray, component: np.ndarray, top: int, left: int, score: float,
                       max_score: float, ring_px: tuple[int, int] = RING_PX) -> np.ndarray:
    """The :data:`FEATURES` of one candidate.

    Args:
        image: the tile's counts, (H, W) or (bands, H, W) (then their mean is the intensity), the
            valid part only.
        component: boolean mask of the candidate's pixels, cropped to its bounding box.
        top, left: where ``component``'s box lies in ``image``.
        score, max_score: the candidate's mean and largest vessel probability.
        ring_px: inner and outer radius of the clutter ring; the wide context is every pixel
            within :data:`CONTEXT_PX` of the box that is not the candidate or within its ring.
    """
    inner, outer = ring_px
    h, w = component.shape
    reach = max(outer, CONTEXT_PX)
    r0, c0 = max(top - reach, 0), max(left - reach, 0)
    r1, c1 = min(top + h + reach, image.shape[-2]), min(left + w + reach, image.shape[-1])
    window = _intensity(image[..., r0:r1, c0:c1])
    # The ring and the candidate's neighbourhood are local: dilate within a box just past the ring.
    b0, d0 = max(top - r0 - outer, 0), max(left - c0 - outer, 0)
    near = (slice(b0, top - r0 + h + outer), slice(d0, left - c0 + w + outer))
    local = np.zeros((min(top - r0 + h + outer, window.shape[0]) - b0,
                      min(left - c0 + w + outer, window.shape[1]) - d0), bool)
    local[top - r0 - b0:top - r0 - b0 + h, left - c0 - d0:left - c0 - d0 + w] = component
    # A square dilation by the outer radius is the inner one dilated by the difference (also where
    # the box clips it: the box is convex), so the two share their first pass.
    shut = _dilate(local, inner)
    grown_near = _dilate(shut, outer - inner)
    grown = np.zeros(window.shape, bool)
    grown[near] = grown_near
    ring_near = grown_near & ~shut
    # boolean indexing walks in row-major order, so the candidate's box and the ring's box give
    # the same values in the same order as masks over the whole window would
    inside = window[top - r0:top - r0 + h, left - c0:left - c0 + w][component]
    # A candidate filling its whole tile has no clutter around it: its own pixels stand in.
    around = window[near][ring_near] if ring_near.any() else inside
    context = window[~grown] if not grown.all() else around
    ring_mean, ring_std = _mean_std(around)
    context_mean, context_std = _mean_std(context)
    inside_mean = float(np.add.reduce(inside) / inside.size)
    return np.array([score, max_score, np.log(inside.size), _log1p(inside_mean), _log1p(ring_mean),
                     _log1p(ring_std), (inside_mean - ring_mean) / (ring_std + 1.0),
                     _log1p(_p90(inside)), _log1p(context_mean), _log1p(context_std),
                     _log1p(_p90(context)), *shape_features(component)])


def tile_features(image: np.ndarray, candidates: list[tuple[np.ndarray, int, int, float, float]],
                  ring_px: tuple[int, int] = RING_PX) -> np.ndarray:
    """:func:`component_features` of each of a tile's candidates ((component, top, left, score,
    max_score) as it takes them), as rows ((N, len(FEATURES))), bit for bit.

    The bands' mean is taken once, over the box that holds every candidate's neighbourhood, when
    that box holds fewer pixels than their neighbourhoods together (a coast with dozens of
    candidates), instead of once per candidate over its own.
    """
    if not candidates:
        return np.empty((0, len(FEATURES)))
    reach = max(ring_px[1], CONTEXT_PX)
    height, width = image.shape[-2:]
    boxes = [(max(top - reach, 0), max(left - reach, 0), min(top + c.shape[0] + reach, height),
              min(left + c.shape[1] + reach, width)) for c, top, left, *_ in candidates]
    r0, c0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    r1, c1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    if image.ndim == 3 and (r1 - r0) * (c1 - c0) < sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes):
        # every neighbourhood lies in the box, and one clipped at the box's edge is clipped at the
        # tile's there, so each candidate sees the same pixels as in the whole tile
        image, shift = _intensity(image[:, r0:r1, c0:c1]), (r0, c0)
    else:
        shift = (0, 0)
    return np.array([component_features(image, component, top - shift[0], left - shift[1], score, max_score, ring_px)
                     for component, top, left, score, max_score in candidates])


def _intensity(window: np.ndarray) -> np.ndarray:
    """The counts of a (H, W) or (bands, H, W) window as float64 intensity (their mean over the
    bands): one pass straight from the counts, no float64 copy of every band, and none at all of
    a float64 intensity already (the features only read it)."""
    return window.mean(axis=0, dtype=np.float64) if window.ndim == 3 else np.asarray(window, np.float64)


def _log1p(value: float) -> float:
    """``log1p`` for counts, mirrored below zero (``-log1p(-value)``): the same for every count a
    model was fitted on (unsigned counts, amplitude), and finite for a float tile whose values go
    negative (decibels), where ``log1p`` gives NaN below -1 and a NaN feature would decide alone."""
    return float(np.log1p(value)) if value >= 0 else -float(np.log1p(-value))


def _p90(values: np.ndarray) -> float:
    """``np.percentile(values, 90)`` (its default, linear method), bit for bit, for a 1-D float64
    array: one partition and numpy's own interpolation, without the generic machinery that cost
    most of the features' time on board. (A zero answer's sign is that of the partition at the
    two order statistics the shipped stage was fitted with, which np.percentile's may not share.)"""
    n = values.size
    virtual = (n - 1) * 0.9
    lo = min(int(np.floor(virtual)), n - 1)
    # One partition at ``lo``, then the next order statistic as the smallest value above it:
    # partitioning at (lo, lo + 1) in one call took four times as long on a context of thousands.
    # fmin skips NaN, as the partition's order puts NaN last (the (lo + 1)-th is then a number).
    part = np.partition(values, lo)
    a = float(part[lo])
    b = float(np.fmin.reduce(part[lo + 1:])) if lo + 1 < n else a
    if a == 0.0 and b == 0.0:
        # 0.0 and -0.0 tie, and which of them the answer's sign comes from is the partition's
        # doing: here (a float tile with zeros, rare) the two-index partition decides, as it did
        part = np.partition(values, (lo, min(lo + 1, n - 1)))
        a, b = float(part[lo]), float(part[min(lo + 1, n - 1)])
    gamma = virtual - lo
    # numpy's _lerp: from the nearer end, so that gamma 1 gives b exactly
    return b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma


def shape_features(component: np.ndarray) -> tuple[float, float, float]:
    """(fill, log_elongation, extent) of a component's pixels (a boolean crop to its box).

    From the second moments of its pixels, each a unit square (so one pixel has variance 1/12 along
    each axis and no moment is zero): a solid L x W rectangle at any angle has principal variances
    L^2/12 and W^2/12, so ``fill`` = area / (12 sqrt(l1 l2)) is about 1 for a hull-like blob and
    less for a ragged or hollow one; ``log_elongation`` = log(L / W) = log(l1 / l2) / 2; ``extent``
    is the share of its axis-aligned box it covers.
    """
    rows, cols = np.nonzero(component)
    area = rows.size
    if area > 1:
        # np.cov(..., bias=True)'s own arithmetic, bit for bit, without its argument handling (a
        # tenth of the features' time on board)
        centred = np.empty((2, area))
        centred[0], centred[1] = rows, cols
        # mean(axis=1) is this reduction over the count, as numpy's _mean does it
        centred -= (np.add.reduce(centred, axis=1) / area)[:, None]
        cov = np.dot(centred, centred.T.conj()) * (1.0 / area)
    else:
        cov = np.zeros((2, 2))
    small, large = np.linalg.eigvalsh(cov + np.eye(2) / 12.0)
    return (float(area / (12.0 * np.sqrt(large * small))), float(0.5 * np.log(large / small)),
            float(area / component.size))
