"""An ensemble of decision trees read in a few array operations per call: the second stage's
boosted trees (:class:`runtime.discriminate.TreeDiscriminator`) judge every candidate of a tile at
once, on board, where walking a dozen nodes of each of a hundred trees in Python took a third of
the stage's time."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: The most bytes the failed-mask table may take: (distinct thresholds + features) x trees x 8 grows
#: with the square of the trees (a few thousand trees of 64 leaves, a manifest well within an
#: upload, would take gigabytes on board), so a larger ensemble is walked instead, to the same bits.
#: The shipped stage's table (models/sar: 100 trees) takes under 1 MiB.
MAX_TABLE_BYTES = 32 * 2**20

#: The most bytes :meth:`LeafMasks.raw` gathers at once (candidates x features x trees x 8): a tile
#: of thousands of candidates is read in chunks of rows, each row's answer the same.
MAX_GATHER_BYTES = 8 * 2**20


@dataclass(frozen=True)
class LeafMasks:
    """Every tree's tests at once, in a few array operations (QuickScorer: Lucchese et al., SIGIR
    2015, with its tests grouped by feature), instead of a walk of a dozen Python steps per tree
    and candidate (a third of the stage's time on board).

    A tree's leaves are numbered left to right, one bit each. A test that fails (the row goes
    right) rules out every leaf of its left subtree, so the leaf a row reaches is the leftmost one
    that no failed test of its tree rules out: the lowest set bit of the AND of the failed tests'
    masks (the rightmost leaf is in no left subtree, so a bit always remains). The tests that fail
    for a value of a feature are those whose threshold lies below it (``x <= threshold`` goes left,
    as in the walk; NaN fails them all), so for each feature and each rank of a value among its
    thresholds the AND of those tests' masks over every tree is one precomputed row: a candidate
    costs one bisection per feature, one AND over the features and one lookup of each tree's leaf
    value, added in tree order as the walk adds them, which gives its raw score bit for bit.
    """

    thresholds: tuple[list[float], ...]  #: per feature, the distinct thresholds its tests use, ascending
    offsets: np.ndarray  #: (F,) where each feature's rows begin in ``failed``
    failed: np.ndarray  #: (sum of (thresholds + 1), T) uint64: the leaves left when the value has that rank
    leaf_values: np.ndarray  #: (T, 64) each tree's leaf values, left to right

    @classmethod
    def of(cls, trees: tuple[dict[str, np.ndarray], ...], n_features: int) -> LeafMasks | None:
        """The tables of ``trees``, or None if one has more than 64 leaves (or a node reached twice) or
        the table would take more than :data:`MAX_TABLE_BYTES`."""
        tests: list[tuple[int, int, float, int]] = []  # (tree, feature, threshold, mask of what stays)
        leaf_values = np.zeros((len(trees), 64))
        for t, tree in enumerate(trees):
            reached = _reached_in_order(tree)
            if reached is None:
                return None
            left = tree["left"]
            leaves = [node for node in reached if left[node] < 0]
            if len(leaves) > 64:
                return None
            # only the nodes a walk can reach: a node no walk reaches (which the manifest allows)
            # tests nothing, even where its children are reached through another parent
            for node in sorted(leaves_under := _leaf_spans(tree, reached, leaves)):
                if left[node] >= 0:
                    lo, hi = leaves_under[int(left[node])]
                    tests.append((t, int(tree["feature"][node]), float(tree["threshold"][node]),
                                  ~(((1 << (hi - lo)) - 1) << lo) & (2**64 - 1)))
            leaf_values[t, :len(leaves)] = tree["value"][leaves]
        # one pass over the tests (a manifest may list a feature many times: one pass per feature
        # would be tests x features)
        distinct: list[set[float]] = [set() for _ in range(n_features)]
        for _, f, th, _ in tests:
            distinct[f].add(th)
        thresholds = tuple(sorted(feature_thresholds) for feature_thresholds in distinct)
        n_rows = sum(len(th) + 1 for th in thresholds)
        if n_rows * len(trees) * 8 > MAX_TABLE_BYTES:
            return None
        offsets = np.cumsum([0] + [len(th) + 1 for th in thresholds[:-1]])
        failed = np.full((n_rows, len(trees)), 2**64 - 1, np.uint64)
        rank = [{th: i for i, th in enumerate(feature_thresholds)} for feature_thresholds in thresholds]
        for t, f, th, keep in tests:
            # fails for every value ranked past it: from the row after its own on (ANDed down below)
            failed[offsets[f] + rank[f][th] + 1, t] &= np.uint64(keep)
        for f, th in enumerate(thresholds):
            rows = slice(offsets[f], offsets[f] + len(th) + 1)
            failed[rows] = np.bitwise_and.accumulate(failed[rows], axis=0)
        return cls(thresholds, offsets, failed, leaf_values)

    def raw(self, x: np.ndarray, baseline: float) -> np.ndarray:
        """``baseline`` plus each tree's leaf value for every row of ``x`` ((N, features))."""
        step = max(1, MAX_GATHER_BYTES // (8 * self.failed.shape[1] * max(len(self.thresholds), 1)))
        if len(x) > step:  # rows are independent: the chunks' answers are the whole's
            return np.concatenate([self.raw(x[i:i + step], baseline) for i in range(0, len(x), step)])
        ranks = [[offset + (bisect.bisect_left(th, v) if v == v else len(th))  # NaN fails every test
                  for v, th, offset in zip(row, self.thresholds, self.offsets.tolist())] for row in x.tolist()]
        ranked = np.array(ranks, np.intp).reshape(len(x), len(self.thresholds))
        left_open = np.bitwise_and.reduce(self.failed[ranked], axis=1)
        lowest = left_open & (~left_open + np.uint64(1))
        # a power of two is exact in float64, and frexp gives its exponent exactly
        leaf = np.frexp(lowest.astype(np.float64))[1] - 1
        values = self.leaf_values[np.arange(self.leaf_values.shape[0]), leaf]
        # accumulate adds left to right, as the walk does (a sum would pair them up)
        return np.add.accumulate(np.concatenate([np.full((len(x), 1), baseline), values], axis=1), axis=1)[:, -1]


def _reached_in_order(tree: Mapping[str, np.ndarray]) -> list[int] | None:
    """The node ids of ``tree`` reachable from its root, in preorder (a node, its left subtree,
    its right subtree: the leaves among them come left to right); None if a node is reached twice
    (a graph the walk can follow, but not a tree)."""
    left, right = tree["left"].tolist(), tree["right"].tolist()
    reached, seen, stack = [], set(), [0]
    while stack:
        node = stack.pop()
        if node in seen:
            return None
        seen.add(node)
        reached.append(node)
        if left[node] >= 0:
            stack += [right[node], left[node]]  # left popped first
    return reached


def _leaf_spans(tree: Mapping[str, np.ndarray], reached: list[int], leaves: list[int]) -> dict[int, tuple[int, int]]:
    """For every node in ``reached`` (preorder), the positions (first, one past the last) of its
    subtree's leaves in ``leaves``: in preorder a node's children come after it, so a pass from the
    last node back closes each. Nodes no walk reaches get none (their children may be reached
    through another parent, and a span over them would be another subtree's, or none at all)."""
    left, right = tree["left"].tolist(), tree["right"].tolist()
    spans = {leaf: (i, i + 1) for i, leaf in enumerate(leaves)}
    for node in reversed(reached):
        if left[node] >= 0:
            spans[node] = (spans[left[node]][0], spans[right[node]][1])
    return spans
