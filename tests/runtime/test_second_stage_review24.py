"""Review of the second stage's fast paths (leaf masks, one call per tile): inputs the manifest
allows where they gave other answers than the plain paths, or took memory that grows with the
square of the ensemble or with the candidates of a tile."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from runtime.candidate_features import FEATURES, _p90
from runtime.discriminate import Discriminator, TreeDiscriminator, discriminator_from_manifest
from runtime.leaf_masks import LeafMasks


def _bits(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, np.float64).view(np.int64)


def _walked(stage: TreeDiscriminator, rows: np.ndarray) -> np.ndarray:
    x = rows[:, [FEATURES.index(f) for f in stage.features]]
    return 1.0 / (1.0 + np.exp(-stage._walk(x)))


def _peak_bytes(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _full_tree(rng: np.random.Generator, leaves: int, n_features: int) -> dict[str, np.ndarray]:
    """A tree of ``leaves`` leaves, numbered breadth first, every threshold its own."""
    n = 2 * leaves - 1
    left, right = np.full(n, -1), np.full(n, -1)
    left[:leaves - 1], right[:leaves - 1] = np.arange(1, 2 * leaves - 2, 2), np.arange(2, 2 * leaves - 1, 2)
    return {"feature": rng.integers(0, n_features, n), "threshold": rng.random(n), "left": left, "right": right,
            "value": rng.normal(0, 0.01, n)}


def test_a_node_no_walk_reaches_tests_nothing() -> None:
    """Node 1 is reached by no walk but points at the leaves node 0 reaches (the manifest's checks
    allow it: its children come after it): its test must not rule out a leaf, and a node pointing
    across the tree (right before left) must not fail the table's build."""
    tree = {"feature": np.array([0, 0, 0, 0]), "threshold": np.array([0.5, -10.0, 0.0, 0.0]),
            "left": np.array([2, 2, -1, -1]), "right": np.array([3, 3, -1, -1]),
            "value": np.array([0.0, 0.0, 1.0, -1.0])}
    crossed = {"feature": np.array([0, 0, 0, 0, 0]), "threshold": np.array([0.5, 0.0, 9.0, 0.0, 0.0]),
               "left": np.array([3, 4, 4, -1, -1]), "right": np.array([4, 3, 3, -1, -1]),
               "value": np.array([0.0, 0.0, 0.0, 2.0, -2.0])}  # nodes 1 and 2: no way in
    rows = np.zeros((4, len(FEATURES)))
    rows[:, FEATURES.index("contrast")] = [-20.0, 0.0, 5.0, 20.0]
    for trees in ((tree,), (crossed,), (tree, crossed)):
        stage = TreeDiscriminator(("contrast",), 0.0, trees, 0.5)
        assert stage._masks is not None
        assert np.array_equal(_bits(stage.probability(rows)), _bits(_walked(stage, rows)))


def test_a_large_ensemble_is_walked_instead_of_taking_a_table_the_square_of_its_size() -> None:
    """400 trees of 64 leaves (a manifest of a few MiB) would take an 80 MB table; a few thousand,
    gigabytes: such an ensemble is walked, to the same bits, within a bounded memory."""
    rng = np.random.default_rng(0)
    stage = TreeDiscriminator(FEATURES, 0.1, tuple(_full_tree(rng, 64, len(FEATURES)) for _ in range(400)), 0.5)
    rows = rng.random((5, len(FEATURES)))
    got: list[np.ndarray] = []
    assert _peak_bytes(lambda: got.append(stage.probability(rows))) < 40 * 2**20
    assert np.array_equal(_bits(got[0]), _bits(_walked(stage, rows)))


def test_many_candidates_are_read_in_chunks_of_bounded_memory() -> None:
    """A tile of thousands of candidates and an ensemble of many small trees: the masks are
    gathered a chunk of rows at a time (candidates x features x trees x 8 bytes at once was 56 MB
    here), each row's answer the same as alone and as the walk's."""
    rng = np.random.default_rng(1)
    trees = tuple({"feature": np.array([int(rng.integers(len(FEATURES))), 0, 0]),
                   "threshold": np.array([float(rng.random()), 0.0, 0.0]), "left": np.array([1, -1, -1]),
                   "right": np.array([2, -1, -1]), "value": np.array([0.0, *rng.normal(0, 0.01, 2)])}
                  for _ in range(1000))
    stage = TreeDiscriminator(FEATURES, 0.0, trees, 0.5)
    assert stage._masks is not None and isinstance(stage._masks, LeafMasks)
    rows = rng.random((500, len(FEATURES)))
    got: list[np.ndarray] = []
    assert _peak_bytes(lambda: got.append(stage.probability(rows))) < 32 * 2**20
    assert np.array_equal(_bits(got[0]), _bits(_walked(stage, rows)))
    assert np.array_equal(_bits(got[0][:7]), _bits([stage.probability(r[None])[0] for r in rows[:7]]))


def test_a_logistic_stage_gives_each_row_the_bits_it_gets_alone() -> None:
    """The runtime now judges a tile's candidates in one call: each probability must be the one a
    candidate got alone (a matrix product sums in another order than a row's dot product, and the
    column pick of every feature lays rows out strided: both differed in the last bits)."""
    rng = np.random.default_rng(3)
    for names in (FEATURES, FEATURES[::-1], FEATURES[:5], ("contrast", "fill")):
        k = len(names)
        stage = Discriminator(names, tuple(rng.normal(size=k)), tuple(rng.random(k) + 0.1),
                              tuple(rng.normal(size=k)), 0.3, 0.5)
        for n in (2, 13, 200):
            rows = rng.normal(0, 3, (n, len(FEATURES)))
            alone = [stage.probability(r[None])[0] for r in rows]
            assert np.array_equal(_bits(stage.probability(rows)), _bits(alone)), (names, n)
    assert stage.probability(np.zeros((0, len(FEATURES)))).shape == (0,)


def test_the_p90_of_signed_zeros_keeps_the_sign_the_two_index_partition_gave() -> None:
    """A float tile of zeros and negative zeros: the 90th percentile's sign is that of the plain
    path (a partition at both order statistics), which the shipped stage's features were made with."""
    rng = np.random.default_rng(4)
    for _ in range(500):
        n = int(rng.integers(1, 200))
        values = rng.choice(np.array([0.0, -0.0]), n)
        virtual = (n - 1) * 0.9
        lo = min(int(np.floor(virtual)), n - 1)
        hi = min(lo + 1, n - 1)
        part = np.partition(values, (lo, hi))
        a, b, gamma = float(part[lo]), float(part[hi]), virtual - lo
        expected = b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma
        assert np.array_equal(_bits(_p90(values)), _bits(expected)), values


def test_a_feature_named_twice_is_refused_when_the_manifest_is_read() -> None:
    """Each copy of a feature was a column of every candidate's row and a bisection per candidate:
    a manifest naming one 100,000 times loaded, and judging a tile took gigabytes."""
    tree = {"feature": [0], "threshold": [0.0], "left": [-1], "right": [-1], "value": [1.0]}
    table = {"kind": "trees", "features": ["score", "fill", "score"], "baseline": 0.0, "trees": [tree], "cut": 0.5}
    with pytest.raises(ValueError, match=r"each be named once; \['score'\] repeated"):
        discriminator_from_manifest(table)
    logistic = {"features": ["contrast", "contrast"], "mean": [0.0, 0.0], "scale": [1.0, 1.0],
                "weights": [1.0, 1.0], "bias": 0.0, "cut": 0.5}
    with pytest.raises(ValueError, match="named once"):
        discriminator_from_manifest(logistic)
