"""Discrimination: the second stage of a SAR ship detector, after the segmentation has prescreened.

Classical SAR ship detection prescreens bright pixels (a CFAR test) and then discriminates each
candidate by features of the candidate and of the clutter around it, because land, coast and sea
clutter make candidates that a pixel test alone cannot tell from ships. Here the network's
components are the candidates, and each is described by its scores, its size and the contrast of
its pixels against a ring of clutter around it and by the wider neighbourhood it lies in (land and
coast are bright and busy over tens of pixels; open sea is dark and calm), in the tile's own counts.
A logistic model over these features and its shape (how much of its own spread it fills, how elongated it is, how much
of its box it covers: a hull is a filled, elongated blob, built-up land is ragged), fitted on the
ground on a training split's detections and cut where object F1 is best on the validation split
(:mod:`search.discriminate`), travels in the manifest as ``output.discriminator``; the runtime
drops each component whose probability is below its cut. Two kinds of model read the same
features: a logistic model (:class:`Discriminator`) and an ensemble of boosted decision trees
(:class:`TreeDiscriminator`), which can combine them (a bright, ragged, busy-neighbourhood
component) where a linear score cannot; :func:`discriminator_from_manifest` reads either.

Features are computed in pixels and counts, never map units, so a model fitted on chips without a
georeference applies to a georeferenced scene alike. Counts below zero (a float tile in decibels)
get the same log features mirrored (:func:`_log1p`), not NaN, and a probability that comes out
undefined anyway (coefficients so extreme that their terms overflow against each other) is 0: the
stage keeps only what it can vouch for (:func:`_sigmoid`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Every feature a discriminator may use, in the order :func:`component_features` returns them.
FEATURES = ("score", "max_score", "log_area", "log_inside", "log_ring", "log_ring_std", "contrast",
            "log_inside_p90", "log_context", "log_context_std", "log_context_p90",
            "fill", "log_elongation", "extent")

#: The kinds of model ``output.discriminator`` may hold (its ``kind``; absent: ``logistic``).
KINDS = ("logistic", "trees")

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
    out = mask
    for axis in (0, 1):
        n = out.shape[axis]
        shape = list(out.shape)
        shape[axis] = n + 2 * r
        padded = np.zeros(shape, bool)
        padded[(slice(None),) * axis + (slice(r, r + n),)] = out
        out, span = padded, 1
        while span < 2 * r + 1:  # out[i] is the OR of padded[i : i + span]
            step = min(span, 2 * r + 1 - span)
            head = (slice(None),) * axis + (slice(None, out.shape[axis] - step),)
            tail = (slice(None),) * axis + (slice(step, None),)
            out, span = out[head] | out[tail], span + step
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
    window = image[..., r0:r1, c0:c1]
    # the bands' mean straight from the counts: one pass, no float64 copy of every band
    window = window.mean(axis=0, dtype=np.float64) if window.ndim == 3 else window.astype(np.float64)
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


def _log1p(value: float) -> float:
    """``log1p`` for counts, mirrored below zero (``-log1p(-value)``): the same for every count a
    model was fitted on (unsigned counts, amplitude), and finite for a float tile whose values go
    negative (decibels), where ``log1p`` gives NaN below -1 and a NaN feature would decide alone."""
    return float(np.log1p(value)) if value >= 0 else -float(np.log1p(-value))


def _sigmoid(raw: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-raw))``, 0 where ``raw`` is NaN (terms that overflowed against each other:
    no probability at all, so not a ship the stage can vouch for) and without overflow warnings
    at the extremes, where it is 0 or 1."""
    raw = np.where(np.isnan(raw), -np.inf, raw)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-raw))


def _p90(values: np.ndarray) -> float:
    """``np.percentile(values, 90)`` (its default, linear method), bit for bit, for a 1-D float64
    array: one partition and numpy's own interpolation, without the generic machinery that cost
    most of the features' time on board."""
    n = values.size
    virtual = (n - 1) * 0.9
    lo = min(int(np.floor(virtual)), n - 1)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi))
    a, b = float(part[lo]), float(part[hi])
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
        centred = np.stack([rows, cols]).astype(np.float64)
        centred -= centred.mean(axis=1)[:, None]
        cov = np.dot(centred, centred.T.conj()) * (1.0 / area)
    else:
        cov = np.zeros((2, 2))
    small, large = np.linalg.eigvalsh(cov + np.eye(2) / 12.0)
    return (float(area / (12.0 * np.sqrt(large * small))), float(0.5 * np.log(large / small)),
            float(area / component.size))


@dataclass(frozen=True)
class Discriminator:
    """A logistic model over some :data:`FEATURES`: ``p = sigmoid(bias + weights . (x - mean) / scale)``;
    a candidate is kept when ``p >= cut``."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    cut: float
    ring_px: tuple[int, int] = RING_PX

    def __post_init__(self) -> None:
        _check_features(self.features)
        n = len(self.features)
        if not len(self.mean) == len(self.scale) == len(self.weights) == n:
            raise ValueError(f"discriminator mean, scale and weights need {n} values each (one per feature)")
        if not all(np.isfinite(v) for v in (*self.mean, *self.scale, *self.weights, self.bias)):
            raise ValueError("discriminator values must be finite numbers")
        if any(s <= 0 for s in self.scale):
            raise ValueError(f"discriminator scales must be > 0; got {list(self.scale)}")
        _check_cut_and_ring(self.cut, self.ring_px)

    @classmethod
    def from_manifest(cls, table: Mapping[str, Any]) -> Discriminator:
        """From ``output.discriminator``; ``ValueError`` names what is wrong."""
        try:
            return cls(tuple(_strings(table, "features")),
                       *(tuple(_numbers(table, k)) for k in ("mean", "scale", "weights")),
                       _number(table, "bias"), _number(table, "cut"), _ring(table))
        except (KeyError, TypeError, OverflowError) as exc:
            raise ValueError("output.discriminator needs features, mean, scale, weights, bias and cut "
                             f"(and optionally ring_px): {exc!r}") from None

    def to_manifest(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
                "weights": list(self.weights), "bias": self.bias, "cut": self.cut, "ring_px": list(self.ring_px)}

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """Ship probability of each row of :func:`component_features` values ((N, len(FEATURES)))."""
        with np.errstate(over="ignore", invalid="ignore"):  # 0 * inf or inf - inf: NaN, which _sigmoid takes
            x = (_columns(rows, self.features) - np.array(self.mean)) / np.array(self.scale)
            return _sigmoid(self.bias + x @ np.array(self.weights))


#: The arrays that describe each tree of a :class:`TreeDiscriminator`, one entry per node: the
#: feature it tests (an index into the model's ``features``), the threshold (``x <= threshold``
#: goes left), its children (-1 at a leaf) and, at a leaf, the value added to the raw score.
TREE_ARRAYS = ("feature", "threshold", "left", "right", "value")


@dataclass(frozen=True)
class TreeDiscriminator:
    """Boosted decision trees over some :data:`FEATURES`: ``p = sigmoid(baseline + sum of the leaf
    each tree sends the row to)``; a candidate is kept when ``p >= cut``. The trees read the raw
    feature values (no standardisation); each is a dict of :data:`TREE_ARRAYS`."""

    features: tuple[str, ...]
    baseline: float
    trees: tuple[dict[str, np.ndarray], ...]
    cut: float
    ring_px: tuple[int, int] = RING_PX

    def __post_init__(self) -> None:
        _check_features(self.features)
        if not self.trees or not np.isfinite(self.baseline):
            raise ValueError("a trees discriminator needs at least one tree and a finite baseline")
        for i, tree in enumerate(self.trees):
            _check_tree(i, tree, len(self.features))
        _check_cut_and_ring(self.cut, self.ring_px)

    @classmethod
    def from_manifest(cls, table: Mapping[str, Any]) -> TreeDiscriminator:
        """From ``output.discriminator`` with ``kind = "trees"``; ``ValueError`` names what is wrong."""
        try:
            if not isinstance(table["trees"], list) or not all(isinstance(t, Mapping) for t in table["trees"]):
                raise TypeError("trees must be a list of tables")
            trees = tuple({name: np.asarray(_numbers(tree, name, whole=name in ("feature", "left", "right")),
                                            np.int64 if name in ("feature", "left", "right") else np.float64)
                           for name in TREE_ARRAYS} for tree in table["trees"])
            return cls(tuple(_strings(table, "features")), _number(table, "baseline"), trees, _number(table, "cut"),
                       _ring(table))
        except (KeyError, TypeError, OverflowError) as exc:
            raise ValueError("a trees discriminator needs features, baseline, trees (each with "
                             f"{', '.join(TREE_ARRAYS)}) and cut (and optionally ring_px): {exc!r}") from None

    def to_manifest(self) -> dict[str, Any]:
        return {"kind": "trees", "features": list(self.features), "baseline": self.baseline,
                "trees": [{name: tree[name].tolist() for name in TREE_ARRAYS} for tree in self.trees],
                "cut": self.cut, "ring_px": list(self.ring_px)}

    @functools.cached_property
    def _walkable(self) -> list[tuple[list[int], list[float], list[int], list[int], list[float]]]:
        return [tuple(tree[name].tolist() for name in TREE_ARRAYS) for tree in self.trees]  # type: ignore[misc]

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """Ship probability of each row of :func:`component_features` values ((N, len(FEATURES)))."""
        x = _columns(rows, self.features)
        # A tile has a few candidates, each judged alone: walking plain lists costs a tenth of an
        # array walk, whose per-step numpy overhead a single row cannot share.
        raw_rows = []
        for values in x.tolist():
            raw_value = self.baseline
            for feature, threshold, left, right, value in self._walkable:
                node = 0
                while left[node] >= 0:
                    node = left[node] if values[feature[node]] <= threshold[node] else right[node]
                raw_value += value[node]
            raw_rows.append(raw_value)
        # Finite leaves sum to a finite raw score or overflow to an infinity, never NaN: no _sigmoid
        # (its guards cost a tenth of the walk, per candidate, on board).
        return 1.0 / (1.0 + np.exp(-np.array(raw_rows, np.float64)))


def _strings(table: Mapping[str, Any], key: str) -> list[str]:
    """``table[key]`` if it is a list of strings, else a TypeError naming it (a string is not a list
    of its letters here)."""
    values = table[key]
    if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
        raise TypeError(f"{key} must be a list of names; got {values!r}")
    return values


def _numbers(table: Mapping[str, Any], key: str, whole: bool = False) -> list[float]:
    """``table[key]`` if it is a flat list of numbers (of whole numbers with ``whole``), else a
    TypeError naming it: a nested or string value would load and then fail on every tile."""
    values = table[key]
    kinds = (int,) if whole else (int, float)
    if not (isinstance(values, list) and all(isinstance(v, kinds) and not isinstance(v, bool) for v in values)):
        raise TypeError(f"{key} must be a list of {'integers' if whole else 'numbers'}; got {str(values)[:80]}")
    return values


def _number(table: Mapping[str, Any], key: str) -> float:
    """``table[key]`` as a float if it is a number, else a TypeError naming it: ``float()`` alone
    would take the string ``"0.5"`` or ``true`` (1.0) for a cut or a bias, as :func:`_numbers`
    refuses them in a list."""
    value = table[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{key} must be a number; got {str(value)[:80]}")
    return float(value)


def _ring(table: Mapping[str, Any]) -> tuple[int, int]:
    """``ring_px`` (default :data:`RING_PX`) if it is two integers, else a TypeError."""
    ring = table.get("ring_px", list(RING_PX))
    if not (isinstance(ring, (list, tuple)) and len(ring) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in ring)):
        raise TypeError(f"ring_px must be two integers (inner, outer); got {ring!r}")
    return int(ring[0]), int(ring[1])


def check_kind(kind: str, what: str = "discriminator kind") -> str:
    """``kind`` if it is one of :data:`KINDS`, else a ``ValueError`` naming ``what`` and the choices."""
    if kind not in KINDS:
        raise ValueError(f"{what} must be one of {KINDS}; got {kind!r}")
    return kind


def _columns(rows: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    """The columns of ``features`` from rows of :func:`component_features` values, as float64."""
    return np.asarray(rows, np.float64)[:, [FEATURES.index(f) for f in features]]


def _check_features(features: tuple[str, ...]) -> None:
    unknown = [f for f in features if f not in FEATURES]
    if unknown or not features:
        raise ValueError(f"discriminator features must be among {FEATURES}; got {list(features)}")


def _check_cut_and_ring(cut: float, ring_px: tuple[int, int]) -> None:
    if not 0.0 < cut < 1.0:
        raise ValueError(f"discriminator cut must lie in (0, 1); got {cut}")
    if len(ring_px) != 2 or not 0 <= ring_px[0] < ring_px[1]:
        raise ValueError(f"discriminator ring_px must be (inner, outer) with 0 <= inner < outer; got {list(ring_px)}")


def _check_tree(i: int, tree: Mapping[str, np.ndarray], n_features: int) -> None:
    """``ValueError`` unless ``tree`` is a well-formed binary tree whose walk from the root ends."""
    sizes = {name: len(tree[name]) for name in TREE_ARRAYS}
    n = sizes["feature"]
    if n == 0 or set(sizes.values()) != {n}:
        raise ValueError(f"discriminator tree {i}: {', '.join(TREE_ARRAYS)} need one value per node each; got {sizes}")
    left, right = tree["left"], tree["right"]
    inner = left >= 0
    if not (np.array_equal(inner, right >= 0) and (left[inner] > np.flatnonzero(inner)).all()
            and (right[inner] > np.flatnonzero(inner)).all() and (left < n).all() and (right < n).all()):
        # children after their parent: every walk from the root moves forward and so ends
        raise ValueError(f"discriminator tree {i}: children must be -1 at leaves and later nodes of the tree otherwise")
    if not ((tree["feature"][inner] >= 0) & (tree["feature"][inner] < n_features)).all():
        raise ValueError(f"discriminator tree {i}: features must index the model's {n_features} features")
    if not (np.isfinite(tree["threshold"][inner]).all() and np.isfinite(tree["value"]).all()):
        raise ValueError(f"discriminator tree {i}: thresholds and values must be finite")


#: Either kind of second stage, as the runtime holds it.
SecondStage = Discriminator | TreeDiscriminator


def discriminator_from_manifest(table: Mapping[str, Any]) -> SecondStage:
    """The second stage ``output.discriminator`` describes, of its ``kind`` (:data:`KINDS`)."""
    if not isinstance(table, Mapping):
        raise ValueError(f"output.discriminator must be a table; got {type(table).__name__}")
    kind = check_kind(table.get("kind", "logistic"), "output.discriminator kind")
    return TreeDiscriminator.from_manifest(table) if kind == "trees" else Discriminator.from_manifest(table)
