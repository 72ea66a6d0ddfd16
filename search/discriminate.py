"""Fit the runtime's second stage (:mod:`runtime.discriminate`) for a flight model on its own split.

    python -m search discriminate --model OUT/flight_model --split OUT/data/split.json --out BUNDLE

1. the model runs through ``hil run`` on the split's training and validation samples with its own
   cuts opened (``min_score`` 0, ``min_area_px`` down to ``floor_px``), so that every candidate the
   network makes is seen;
2. each candidate is described on the ground by the features the runtime computes on board
   (:func:`runtime.candidate_features.component_features`, on the sample's counts in the bands the rig
   sent: :func:`runtime.bands.adapt_bands`, as ``hil run`` picks them) and labelled a ship when it
   matches a true vessel as hil's object F1 counts it (polygon IoU >= ``[score] match_iou``, 0.5, with
   hil's slack, against the outlines' parts inside the image: :func:`hil.score.scored_truth`, :func:`is_match`);
3. a model of the ``kind`` asked for (:data:`runtime.discriminate.KINDS`: a logistic model, or
   boosted decision trees fitted by scikit-learn's ``HistGradientBoostingClassifier`` with its
   default settings but early stopping, which is off: 100 trees, not tuned here) is fitted on the
   training candidates, and its cut is chosen on the validation candidates where object F1 is best
   (``cut_by = "f1"``) or where object F1 plus the pooled vessel IoU of the outlines kept is
   (``"f1+outline_iou"``: the two figures a flight model is held to; :data:`search.config.CUT_BY`); the test split is
   never read;
4. the bundle is written with ``output.discriminator``, the opened cuts, and the fit's record in
   ``metrics.discriminator``; the figures the input bundle's manifest held for its detections
   (validation F1, fitness, runtime p50: measured with the cuts now replaced and without this
   stage) move to ``metrics.before_second_stage`` (:data:`BEFORE_SECOND_STAGE`).

On board the ring and the wider context stop at the tile's edge, so on the ground each candidate
is measured as the payload measured it: on the tile (hil's grid: the bundle's tile size and
hil's overlap) whose verdict decides it in flight (:func:`_judging_tile`), with the part of it
that lies in that tile. A vessel one tile saw whole is that tile's (the one owning its centroid
first). A vessel cut by a border reaches the ground as one merged outline (its score the pieces'
area-weighted mean) but was judged on board piece by piece, and the ground's merge keeps or drops it
on its largest piece (hil's default border rule); that piece stands for it, with its own score and
largest probability, recomputed from the network's probabilities on its tile
(:class:`DeviceProbability`: the same bundle on the same device as the hil run), so that a ground
row is the row the payload computed for the piece that decides.

Length: one procedure, from the arguments' checks through the hil runs and the rows they give to
the fitted, cut and written stage; split, its steps would pass the same split, device and work
folder between modules to no reader's gain.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import rasterize
from shapely.geometry import shape

from flightsim.tiles import owned_windows, tile_grid
from hil.score import IOU_SLACK, match_objects, precision_recall_f1, scored_truth
from runtime.bands import adapt_bands, model_band_names
from runtime.bundle import Bundle, read_bundle, rewritable_manifest, rewrite_bundle, sha256
from runtime.candidate_features import FEATURES, component_features
from runtime.discriminate import Discriminator, SecondStage, TreeDiscriminator, check_kind
from search.config import check_cut_by
from search.state import write_json_atomic

if TYPE_CHECKING:
    from flightsim.sources.base import Sample

#: Cuts tried on the validation candidates.
CUTS = tuple(np.round(np.arange(0.05, 0.96, 0.025), 3))

#: What a fit's rows mean, in :func:`fit_key`: raised whenever they are computed otherwise, so a
#: store of fits made the old way is not reused. 2: a merged vessel's piece with its own scores,
#: the rig's bands, detections matched by the full sample name, the replaced cuts' area exact. 3: a
#: vessel's row from the tile whose verdict decides it in flight (:func:`_judging_tile`), no longer
#: always from the tile owning its centroid. 4: labels and the number of true vessels as hil's object
#: F1 counts them (:func:`hil.score.scored_truth`, :func:`is_match`): truth clipped to the image, IoU with hil's slack;
#: a centroid's tile found from the outline's centroid, as hil finds it (:func:`_tile_view`).
ROWS_VERSION = 4

#: The manifest's ``metrics`` that describe the bundle's detections as they were before its cuts
#: were replaced by the second stage: :func:`discriminate` moves them under ``before_second_stage``.
#: (``val_miou`` and ``val_vessel_iou`` stay: hil scores them on the network's thresholded mask,
#: which neither the cuts nor the second stage touch.)
BEFORE_SECOND_STAGE = ("val_f1", "fitness", "runtime_latency_p50_ms")

#: A tile's vessel probabilities as the payload computed them: called with the tile's counts as
#: the rig sent them ((bands, h, w)) and its window (row, col, h, w) in the sample; returns (h, w).
TileProbability = Callable[[np.ndarray, tuple[int, int, int, int]], np.ndarray]


class Candidates(NamedTuple):
    """The candidates of one part of a split, in the order of a hil run's detections
    (:func:`candidates`)."""

    #: (n, len(FEATURES)) feature rows, as the payload measured each.
    rows: np.ndarray
    #: (n,) whether each matches a true vessel as hil counts it (:func:`is_match`).
    labels: np.ndarray
    #: the true vessels hil counts there (object F1's denominator).
    n_truth: int
    #: (n, 2) per candidate: the pixels inside its outline that are vessel pixels of the truth mask,
    #: and all the pixels inside its outline (hil's rasterisation of the outline on the sample's grid);
    #: (0, 0) on a sample without a truth mask, whose pixels hil does not pool either.
    pixels: np.ndarray
    #: the vessel pixels of the truth masks of the part's samples.
    truth_px: int


def pooled_outline_iou(kept: np.ndarray, pixels: np.ndarray, truth_px: int) -> float:
    """The pooled vessel IoU of the outlines of the kept candidates (hil's ``outline_vessel_iou``:
    one set of disjoint outlines per sample, as a hil run's detections are), from
    :attr:`Candidates.pixels`."""
    inside, area = pixels[kept].sum(axis=0) if kept.any() else (0, 0)
    union = truth_px + area - inside
    return float(inside / union) if union else 1.0


def choose_cut(f1_by_cut: dict[float, float], iou_by_cut: dict[float, float], cut_by: str) -> float:
    """The cut that ``cut_by`` (:data:`search.config.CUT_BY`) prefers, the one nearest 0.5 among equals."""
    if check_cut_by(cut_by) == "f1":
        return max(f1_by_cut, key=lambda c: (f1_by_cut[c], -abs(c - 0.5)))
    return max(f1_by_cut, key=lambda c: (f1_by_cut[c] + iou_by_cut[c], -abs(c - 0.5)))


def stage_score(record: dict[str, Any]) -> float:
    """What a fit's cut was chosen for, at that cut: validation F1, or F1 plus the pooled vessel IoU
    (``record["cut_by"]``; fits from before it was recorded were chosen by F1): how two networks'
    stages are compared (:func:`search.final.compare_final`)."""
    if record.get("cut_by", "f1") == "f1":
        return float(record["val_f1"])
    return float(record["val_f1"]) + float(record["val_outline_iou"])


class NoBothKinds(ValueError):
    """A network's candidates hold no ship, or nothing but ships: no second stage can be fitted for
    it. A fact about that network (the search's comparison of two networks judges it as one that
    cannot fly a second stage: :func:`search.final.compare_final`), not a mistake in the call."""


def fit_logistic(rows: np.ndarray, labels: np.ndarray, features: tuple[str, ...] = FEATURES,
                 l2: float = 1e-2, cut: float = 0.5) -> Discriminator:
    """A :class:`Discriminator` fitted by Newton's method (the L2 penalty keeps it finite on separable data)."""
    x = np.asarray(rows, np.float64)[:, [FEATURES.index(f) for f in features]]
    y = np.asarray(labels, np.float64)
    if len(y) != len(x) or not 0 < y.sum() < len(y):
        raise NoBothKinds("a discriminator needs candidates of both kinds (ships and not), one label per row")
    mean, scale = x.mean(0), x.std(0)
    # A column that never varies (all its values equal) has std 0 in theory but 1e-17 to 1e-15 in
    # float64 (the mean's rounding): divided by that, any other value in flight became enormous.
    scale[np.ptp(x, axis=0) == 0] = 1.0
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    w = np.zeros(z.shape[1])
    penalty = l2 * np.eye(len(w))
    penalty[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, z.T @ (p - y) + penalty @ w)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Discriminator(tuple(features), tuple(mean.tolist()), tuple(scale.tolist()), tuple(w[1:].tolist()),
                         float(w[0]), cut)


def fit_trees(rows: np.ndarray, labels: np.ndarray, features: tuple[str, ...] = FEATURES,
              cut: float = 0.5, seed: int = 0) -> TreeDiscriminator:
    """A :class:`TreeDiscriminator` fitted by scikit-learn's gradient boosting with its default
    settings (100 trees of at most 31 leaves, learning rate 0.1) but early stopping, which is off:
    its default ("auto") turns it on above 10,000 rows, and would then hold back a tenth of the
    training candidates and stop at fewer trees, unlike the fit this stage is documented as. The
    fitted model is read out into plain arrays for the runtime. The read-out uses the fitted
    predictors' node arrays, which are not public API, so it is checked against scikit-learn's own
    probabilities on the rows it was fitted on: a version that stores them otherwise fails here, not in flight."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    columns = [FEATURES.index(f) for f in features]
    x = np.asarray(rows, np.float64)[:, columns]
    y = np.asarray(labels, bool)
    if len(y) != len(x) or not 0 < y.sum() < len(y):
        raise NoBothKinds("a discriminator needs candidates of both kinds (ships and not), one label per row")
    model = HistGradientBoostingClassifier(early_stopping=False, random_state=seed).fit(x, y)
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        # the node arrays are unsigned: widen before marking leaves with -1
        trees.append({"feature": np.where(leaf, 0, nodes["feature_idx"].astype(np.int64)),
                      "threshold": np.where(leaf, 0.0, nodes["num_threshold"].astype(np.float64)),
                      "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                      "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                      "value": np.where(leaf, nodes["value"].astype(np.float64), 0.0)})
    baseline = float(np.ravel(model._baseline_prediction)[0])
    fitted = TreeDiscriminator(tuple(features), baseline, tuple(trees), cut)
    full = np.zeros((len(x), len(FEATURES)))
    full[:, columns] = x
    if not np.allclose(fitted.probability(full), model.predict_proba(x)[:, 1], atol=1e-9):
        raise RuntimeError("the trees read out of scikit-learn's model do not reproduce its probabilities: "
                           "its internal layout has changed (see fit_trees)")
    return fitted


def fit_stage(kind: str, rows: np.ndarray, labels: np.ndarray) -> SecondStage:
    """A second stage of ``kind`` (:data:`runtime.discriminate.KINDS`) fitted on every feature."""
    return fit_trees(rows, labels) if check_kind(kind) == "trees" else fit_logistic(rows, labels)


def matched_detections(split: Path, which: str, detections: Path
                       ) -> Iterator[tuple[Sample, list[tuple[dict[str, Any], float]]]]:
    """Each sample of one part of a split (pixels loaded), with the detections a hil run made on it
    and each detection's best IoU with the sample's vessel outlines as hil's object F1 sees them
    (:func:`hil.score.scored_truth`; a match where :func:`is_match`).

    Detections are matched by the full sample name (hil writes ``sample.name`` into each one's
    ``properties.scene``): two sets of a split may hold images of the same stem
    (``ssdd/000001``, ``hrsid/000001``), and each must get only its own."""
    from hil.__main__ import split_source

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    by_scene: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for feature in json.loads(detections.read_text())["features"]:
        by_scene[str(feature["properties"]["scene"])].append(feature)
    for sample in split_source(f"{split}:{which}"):
        sample.load()
        truth = scored_truth(sample)
        # each detection's best IoU as hil's match_objects computes it (valid areal forms, moved near the
        # origin): on its own, with no floor, the best pair is the one it takes first
        found = [(feature, match_objects([shape(feature["geometry"])], truth, 0.0)["matched_mean_iou"] or 0.0)
                 for feature in by_scene.get(sample.name, [])]
        yield sample, found


def is_match(best_iou: float) -> bool:
    """Whether a detection of best IoU ``best_iou`` (:func:`matched_detections`) is a true positive under
    hil's rule: ``[score] match_iou`` less :data:`hil.score.IOU_SLACK`, so that a pair of exactly 0.5 in
    whole pixels counts though map coordinates' rounding computed it a hair under. (hil's greedy
    one-to-one matching pairs the same detections: ours are disjoint, and so are the truths of a sample
    at a match_iou of 0.5 or more, :func:`hil.score.match_objects`.)"""
    from hil.settings import DEFAULTS

    return best_iou >= DEFAULTS.score.match_iou - IOU_SLACK


def _tile_view(burnt: np.ndarray, grid: list[tuple[int, int, int, int]],
               owned: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The window (row, col, h, w) of the tile that owns the centroid of a burnt candidate, as
    :func:`hil.merge.tile_pieces` finds it: the centroid of its outline (its pixels' centres, half a
    pixel past their indices: an index's mean just short of an ownership line put a centroid just past
    it in the tile before), in the first owned part that covers it (edges included, in the grid's
    order, so a centroid on an ownership line is the earlier tile's)."""
    rr, cc = np.nonzero(burnt)
    r, c = rr.mean() + 0.5, cc.mean() + 0.5
    for window, (row, col, h, w) in zip(grid, owned):
        if row <= r <= row + h and col <= c <= col + w:
            return window
    return (0, 0, burnt.shape[0], burnt.shape[1])


def _seen_whole(burnt: np.ndarray, window: tuple[int, int, int, int], total: int) -> bool:
    """Whether the tile of ``window`` holds all ``total`` pixels of ``burnt`` and none on a border of
    it with more of the scene beyond: the payload then sent the vessel whole from that tile, with
    its own verdict (:func:`runtime.vectorize.tile_borders`), not as a piece for the ground."""
    row, col, h, w = window
    view = burnt[row:row + h, col:col + w]
    if int(view.sum()) != total:
        return False
    height, width = burnt.shape
    edges = ((row > 0, view[0]), (col > 0, view[:, 0]), (row + h < height, view[-1]), (col + w < width, view[:, -1]))
    return not any(inner and edge.any() for inner, edge in edges)


def _judging_tile(burnt: np.ndarray, grid: list[tuple[int, int, int, int]],
                  owned: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The window of the tile whose verdict decides a burnt candidate in flight, so that its row is
    the one the second stage is judged by there:

    - a vessel some tile saw whole is kept or dropped as that tile judged it, the tile owning its
      centroid first (:func:`hil.merge.tile_pieces`);
    - a vessel that every tile saw cut reaches the ground as pieces clipped to each tile's owned part,
      and the merge keeps or drops it on its largest piece's probability (hil's default border rule,
      ``largest-else-passed``: :data:`runtime.merge.BORDER_RULES`), so the tile whose owned part
      holds most of it (the first in the grid's order on a tie).

    Until rows version 3 the centroid's tile stood for every vessel, and for a cut one that was
    not always the piece the merge decided on."""
    total = int(burnt.sum())
    owner = _tile_view(burnt, grid, owned)
    if _seen_whole(burnt, owner, total):
        return owner
    for window in grid:
        if _seen_whole(burnt, window, total):
            return window
    areas = [int(burnt[r:r + h, c:c + w].sum()) for r, c, h, w in owned]
    return grid[int(np.argmax(areas))]


def candidates(split: Path, which: str, detections: Path, tile_size: int, overlap: int = 0,
               model_bands: list[str] | None = None, probability: TileProbability | None = None,
               ) -> Candidates:
    """Feature rows of a hil run's detections on one part of a split, measured on the tile the
    payload saw each on (``tile_size``, ``overlap``: the run's grid), their labels (matches a true
    vessel as hil counts it: :func:`is_match`), the number of true vessels hil counts there, and
    each one's pixels against the truth mask (:class:`Candidates`).

    ``model_bands``: the model's band names; each sample's bands are made the model's by the rig's
    rule (:func:`runtime.bands.adapt_bands`, as ``hil run`` applies it without ``--bands``), so the
    counts measured are those the payload received (None: the sample's bands as they are).
    ``probability``: the tiles' vessel probabilities (:class:`DeviceProbability`); needed only for a
    vessel merged from pieces of several tiles, whose own score and largest probability were lost
    in the merge (a ValueError without it).
    """
    rows, labels, pixels, n_truth, truth_px = [], [], [], 0, 0
    for sample, found in matched_detections(split, which, detections):
        n_truth += len(scored_truth(sample))
        # hil pools the pixels of the samples with a truth mask only: one without counts for nothing here
        truth = None if sample.mask is None else sample.mask.astype(bool)
        truth_px += 0 if truth is None else int(np.count_nonzero(truth))
        grid = tile_grid(sample.height, sample.width, tile_size, overlap)
        owned = owned_windows(grid)
        image = sample.image
        if model_bands is not None:
            # strict=False as the rig without --bands: where no rule applies it sends the bands as
            # they are, the runtime rejects every tile, and there is nothing here to measure
            index, _ = adapt_bands(list(sample.bands), list(model_bands), None, strict=False)
            image = image if index is None else image[index]
        tile_probs: dict[tuple[int, int, int, int], np.ndarray] = {}
        for feature, best in found:
            burnt = rasterize([(feature["geometry"], 1)], out_shape=(sample.height, sample.width),
                              transform=sample.transform).astype(bool)
            if not burnt.any():
                continue
            pixels.append((0, 0) if truth is None
                          else (int(np.count_nonzero(burnt & truth)), int(np.count_nonzero(burnt))))
            window = _judging_tile(burnt, grid, owned)
            row, col, h, w = window
            piece = burnt[row:row + h, col:col + w]
            rr, cc = np.nonzero(piece)
            top, left = int(rr.min()), int(cc.min())
            box = piece[top:rr.max() + 1, left:cc.max() + 1]
            tile = image[..., row:row + h, col:col + w]
            props = feature["properties"]
            score, max_score = float(props["score"]), float(props["max_score"])
            if int(props.get("pieces", 1)) > 1:
                if probability is None:
                    raise ValueError(f"{sample.name}: a vessel merged from {props['pieces']} tile pieces needs the "
                                     "tiles' probabilities (probability=) to score the piece the payload judged")
                if window not in tile_probs:
                    tile_probs[window] = np.asarray(probability(tile, window))
                score, max_score = _piece_scores(tile_probs[window], box, top, left)
            rows.append(component_features(tile, box, top, left, score, max_score))
            labels.append(is_match(best))
    return Candidates(np.array(rows).reshape(-1, len(FEATURES)), np.array(labels, bool), n_truth,
                      np.array(pixels, np.int64).reshape(-1, 2), truth_px)


def _piece_scores(prob: np.ndarray, box: np.ndarray, top: int, left: int) -> tuple[float, float]:
    """(score, max_score) of the component ``box`` (a boolean crop whose top-left pixel is at
    ``top``, ``left`` of the tile) as :func:`runtime.vectorize.vectorize` computes them on board: the
    mean and the largest of its pixels' probabilities, in float64, in the same order, bit for bit."""
    vals = prob[top:top + box.shape[0], left:left + box.shape[1]][box].astype(np.float64)
    return float(vals.sum() / int(box.sum())), float(vals.max())


class DeviceProbability:
    """A :data:`TileProbability`: the bundle at ``model`` run on ``device`` the way the payload runs
    each tile (the runtime's preprocessing, device adapter and twin profile, as ``runtime infer``
    does), so a tile gives here the probabilities it gave in the hil run. The device is opened on
    the first tile (compiling a twin takes seconds, and most splits have few merged vessels);
    :meth:`close` releases it."""

    def __init__(self, model: Path, device: str) -> None:
        self.bundle = read_bundle(model)
        self.device = device
        self._adapter: Any = None
        self._prep: Any = None

    def __call__(self, pixels: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
        """The (h, w) vessel probabilities of one tile's counts (``window`` is not needed here)."""
        if self._adapter is None:
            from runtime.device import open_device
            from runtime.preprocess import Preprocessor

            self._adapter = open_device(self.bundle, self.device, lambda *_: None, infer_requests=1)
            self._prep = Preprocessor(self.bundle.manifest["input"], self._adapter.input_shape)
        batch, (h, w) = self._prep(np.ascontiguousarray(pixels), {})
        return np.array(self._adapter.infer(batch)[0, 0, :h, :w])

    def close(self) -> None:
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None


def object_f1(kept: np.ndarray, labels: np.ndarray, n_truth: int) -> float:
    """Object F1 of the kept candidates (hil's rule, :func:`hil.score.precision_recall_f1`), each
    matching candidate one true positive."""
    return precision_recall_f1(int((kept & labels).sum()), int(kept.sum()), n_truth)[2]


def open_cuts(model: Path, out: Path, floor_px: int = 4) -> dict[str, Any]:
    """Write ``model`` to ``out`` with its own cuts opened (smallest vessel down to ``floor_px``, no
    score cut, no discriminator), so that every candidate the network makes is seen; returns the
    cuts it had."""
    bundle = read_bundle(model)
    manifest = rewritable_manifest(bundle)
    before = {k: manifest["output"].get(k) for k in ("min_area_px", "min_score")}
    # a model that kept every component (0) keeps it so; one without the setting gets the floor
    smallest = before["min_area_px"]
    manifest["output"]["min_area_px"] = floor_px if smallest is None else min(int(smallest), floor_px)
    manifest["output"]["min_score"] = 0.0
    manifest["output"].pop("discriminator", None)
    shutil.rmtree(out, ignore_errors=True)
    rewrite_bundle(bundle, out, manifest)
    return before


def split_candidates(opened: Path, split: Path, which: str, work: Path,
                     device: str = "myriadx-emu") -> Candidates:
    """:func:`candidates` of a bundle with its cuts opened (:func:`open_cuts`) on one part of a
    split, through ``hil run`` on ``device`` (its report under ``work/which``), in the bands the
    rig sent and with each merged vessel's piece scored on the same device."""
    import hil
    from hil.__main__ import split_source
    from hil.settings import DEFAULTS

    hil.run(split_source(f"{split}:{which}"), opened, work / which, device=device, progress=False)
    manifest_input = read_bundle(opened).manifest["input"]
    model_bands = model_band_names(manifest_input)
    probability = DeviceProbability(opened, device)
    try:
        return candidates(split, which, work / which / "detections.geojson", manifest_input["shape"][2],
                          DEFAULTS.run.overlap_px, model_bands, probability)
    finally:
        probability.close()


def fit_key(opened: dict[str, Any], before: dict[str, Any], split: Path, device: str, kind: str = "logistic",
            cut_by: str = "f1") -> str:
    """What a fit depends on, as a sha256: the network and what the runtime does around it (the
    ``opened`` bundle's manifest less its name, figures and date; the IR files are in it by checksum),
    the cuts it replaces, the split's contents, the device, hil's tile overlap, the kind of model, how
    its cut is chosen, and the features and cuts tried, and :data:`ROWS_VERSION`. Not the code that
    computes the features otherwise: after a change to it that does not raise that version, delete
    the store. (A cut chosen by F1 keeps the key it had before ``cut_by`` existed: stores of such
    fits stay valid.)"""
    from hil.settings import DEFAULTS

    manifest = {k: v for k, v in opened.items() if k not in ("name", "metrics", "created")}
    payload = {"manifest": manifest, "before": before, "split": sha256(Path(split).read_bytes()),
               "device": device, "overlap_px": DEFAULTS.run.overlap_px, "features": FEATURES,
               "cuts": [float(c) for c in CUTS], "kind": kind, "rows": ROWS_VERSION}
    if cut_by != "f1":
        payload["cut_by"] = cut_by
    return sha256(json.dumps(payload, sort_keys=True).encode())


def _check_arguments(split: Path, device: str) -> None:
    """``split`` a split file and ``device`` a device hil can run, before anything is opened: a hil
    run would refuse an unknown device only once the runtime was up, and ``FILE:ROLE`` (as ``hil run``
    takes a split) is no file here, since both roles are read."""
    from runtime.device import resolve

    if not Path(split).is_file():
        path, sep, role = str(split).rpartition(":")
        if sep and Path(path).is_file():
            raise ValueError(f"--split {split}: give the split file itself ({path}); discriminate reads its train "
                             f"and val samples, not one role ({role!r})")
        raise ValueError(f"--split {split}: no such split file (the search writes OUT/data/split.json)")
    try:
        resolve(device)
    except ValueError as exc:
        raise ValueError(f"--device: {exc}") from None


def discriminate(model: Path, split: Path, out: Path, work: Path, device: str = "myriadx-emu",
                 floor_px: int = 4, fits: Path | None = None, kind: str = "logistic",
                 cut_by: str = "f1") -> dict[str, Any]:
    """Fit, choose the cut (by ``cut_by``, :data:`search.config.CUT_BY`), and write ``out``; returns the record stored
    in the manifest.

    With ``fits``, a folder of earlier fits (one JSON per :func:`fit_key`): a network already fitted
    there on the same split and device is not run through hil again (most of the cost: minutes on a
    real split); its stage and record are taken as they were and only ``out`` is written.
    """
    _check_arguments(split, device)
    before = open_cuts(model, work / "opened", floor_px)
    bundle = read_bundle(work / "opened")  # the bundle written is this one: its cuts opened
    manifest = rewritable_manifest(bundle)
    check_kind(kind)  # before a stored fit is looked up under them
    check_cut_by(cut_by)
    key = fit_key(bundle.manifest, before, split, device, kind, cut_by)
    stored = None if fits is None else Path(fits) / f"{key}.json"
    if stored is not None and stored.exists():
        fit = json.loads(stored.read_text())
        return _write_stage(bundle, manifest, out, fit["discriminator"], fit["record"])
    # val first: a val without a true vessel (as hil counts them) is refused before the train split's
    # hil run, the longer one. The cut is chosen there by object F1, which without truth is 1 for the
    # cut that keeps nothing and 0 for every other: the stage would ship blind.
    val = split_candidates(work / "opened", split, "val", work, device)
    x_val, y_val, n_val = val.rows, val.labels, val.n_truth
    if not n_val:
        raise ValueError(f"--split {split}: its val samples hold no true vessel, and the second stage's cut is "
                         "chosen there by object F1 (1 for a cut that keeps nothing, 0 for any other): no cut can "
                         "be chosen; give it a split whose val holds ships (python -m search run: a larger "
                         "[data] val_fraction, or a [data] source with ships in it)")
    train = split_candidates(work / "opened", split, "train", work, device)
    x_train, y_train = train.rows, train.labels
    fitted = fit_stage(kind, x_train, y_train)
    p_val = fitted.probability(x_val)
    f1_by_cut = {float(c): object_f1(p_val >= c, y_val, n_val) for c in CUTS}
    iou_by_cut = {float(c): pooled_outline_iou(p_val >= c, val.pixels, val.truth_px) for c in CUTS}
    cut = choose_cut(f1_by_cut, iou_by_cut, cut_by)
    chosen = dataclasses.replace(fitted, cut=cut)
    # the cuts it replaces, scored the same way on the same candidates
    # the pixel count back from its log: exp(log(80)) is 79.99999999999997, which ">= 80" drops
    # though the runtime keeps it (count >= min_area_px); counts are whole numbers
    area = np.rint(np.exp(x_val[:, FEATURES.index("log_area")]))
    old = (area >= (before["min_area_px"] or 0)) & (x_val[:, FEATURES.index("score")] >= (before["min_score"] or 0))
    record = {"kind": kind, "fitted_on": f"{split}:train", "cut_chosen_on": f"{split}:val", "device": device,
              "train_candidates": int(len(y_train)), "train_ships": int(y_train.sum()),
              "val_candidates": int(len(y_val)), "val_ships": int(y_val.sum()), "val_truth": n_val,
              "cut_by": cut_by, "val_f1_by_cut": f1_by_cut, "val_outline_iou_by_cut": iou_by_cut, "cut": cut,
              "val_f1": f1_by_cut[cut], "val_outline_iou": iou_by_cut[cut],
              "val_f1_cuts_replaced": object_f1(old, y_val, n_val),
              "val_outline_iou_cuts_replaced": pooled_outline_iou(old, val.pixels, val.truth_px),
              "cuts_replaced": before,
              "val_f1_counting": "each candidate matching a true vessel at IoU >= 0.5 counts once",
              "val_outline_iou_counting": "pooled over the validation samples' pixels, the kept outlines against "
                                         "the truth masks, as hil's outline_vessel_iou"}
    # as JSON keeps it (the cuts as keys become strings), so a fit read back is the same record
    fit = json.loads(json.dumps({"discriminator": chosen.to_manifest(), "record": record}))
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(stored, fit)
    return _write_stage(bundle, manifest, out, fit["discriminator"], fit["record"])


def _write_stage(bundle: Bundle, manifest: dict[str, Any], out: Path, stage: dict[str, Any],
                 record: dict[str, Any]) -> dict[str, Any]:
    """Write the opened ``bundle`` to ``out`` with its second stage and the fit's record.

    The figures of the input's detections (:data:`BEFORE_SECOND_STAGE`) were measured with the
    cuts this stage replaces and without it: they move under ``metrics.before_second_stage``, so
    that none reads as a figure of the bundle written. A bundle fitted again keeps the ones moved
    the first time (nothing measured it in between)."""
    manifest["output"]["discriminator"] = stage
    metrics = {**manifest.get("metrics", {}), "discriminator": record}
    metrics.pop("test", None)  # measured on another output: ship it again to measure
    moved = {k: metrics.pop(k) for k in BEFORE_SECOND_STAGE if k in metrics}
    if moved:
        metrics["before_second_stage"] = {**metrics.get("before_second_stage", {}), **moved}
    manifest["metrics"] = metrics
    shutil.rmtree(out, ignore_errors=True)
    rewrite_bundle(bundle, out, manifest)
    return record
