"""Discrimination: the second stage of a SAR ship detector, after the segmentation has prescreened.

Land, coast and sea clutter make candidates that a pixel test alone cannot tell from ships, so each
of the network's components is described by features of itself and of the clutter around it
(:mod:`runtime.candidate_features`) and judged by a model fitted on the ground on a training
split's detections and cut where object F1 is best on the validation split
(:mod:`search.discriminate`). The model travels in the manifest as ``output.discriminator``; the
runtime drops each component whose probability is below its cut. Two kinds of model read the same
features: a logistic model (:class:`Discriminator`) and an ensemble of boosted decision trees
(:class:`TreeDiscriminator`), which can combine them (a bright, ragged, busy-neighbourhood
component) where a linear score cannot; :func:`discriminator_from_manifest` reads either.

A probability that comes out undefined (coefficients so extreme that their terms overflow against
each other) is 0: the stage keeps only what it can vouch for (:func:`_sigmoid`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.candidate_features import FEATURES, RING_PX
from runtime.leaf_masks import LeafMasks

#: The kinds of model ``output.discriminator`` may hold (its ``kind``; absent: ``logistic``).
KINDS = ("logistic", "trees")

def _sigmoid(raw: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-raw))``, 0 where ``raw`` is NaN (terms that overflowed against each other:
    no probability at all, so not a ship the stage can vouch for) and without overflow warnings
    at the extremes, where it is 0 or 1."""
    raw = np.where(np.isnan(raw), -np.inf, raw)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-raw))


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
            # Each row's dot product on its own, as a stack of (1, k) @ (k, 1) over rows laid out
            # contiguously, as one row alone is: a matrix times the weights goes through another
            # BLAS kernel (gemv), and a row strided across memory (the column pick lays many rows
            # out column by column) through another dot loop, whose sums differ in the last bits,
            # so a candidate's probability would depend on how many others share its tile.
            x = np.ascontiguousarray(x)[:, None, :]
            return _sigmoid(self.bias + (x @ np.array(self.weights)[:, None])[:, 0, 0])


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

    @functools.cached_property
    def _masks(self) -> LeafMasks | None:
        return LeafMasks.of(self.trees, len(self.features))

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """Ship probability of each row of :func:`component_features` values ((N, len(FEATURES)))."""
        x = _columns(rows, self.features)
        masks = self._masks
        raw = masks.raw(x, self.baseline) if masks is not None else self._walk(x)
        # Finite leaves sum to a finite raw score or overflow to an infinity, never NaN: no _sigmoid
        # (its guards cost a tenth of the walk, per candidate, on board).
        return 1.0 / (1.0 + np.exp(-raw))

    def _walk(self, x: np.ndarray) -> np.ndarray:
        """The raw scores, each tree walked node by node from its root (trees of more than 64
        leaves or with a node reached twice, which :class:`LeafMasks` cannot hold, and ensembles
        whose table would exceed :data:`runtime.leaf_masks.MAX_TABLE_BYTES`)."""
        raw_rows = []
        for values in x.tolist():
            raw_value = self.baseline
            for feature, threshold, left, right, value in self._walkable:
                node = 0
                while left[node] >= 0:
                    node = left[node] if values[feature[node]] <= threshold[node] else right[node]
                raw_value += value[node]
            raw_rows.append(raw_value)
        return np.array(raw_rows, np.float64)


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
    # A feature named twice means nothing a fit makes, and each copy costs a column of every
    # candidate's row and a bisection per candidate on board: 100,000 copies took gigabytes per tile.
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise ValueError(f"discriminator features must each be named once; {repeated} repeated")


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
