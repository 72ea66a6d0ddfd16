"""Scoring a network on whole scenes, tiled the way the payload sees them.

A scene is cut into fixed-size tiles (edge tiles padded with the band mean, i.e. zero after
normalisation, and cropped back), each tile is run through a predictor (the torch model during
training, the exported IR for the manifest), and the thresholded masks are compared with ground truth
over the whole scene. Counting intersection and union over all pixels of all scenes, rather than
averaging per-tile scores, keeps tiles without vessels from dominating the figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from hil.score import COUNTS, ious, pixel_counts
from runtime import ov_api
from search.data import Normalization, SceneArrays

# Maps a normalised tile batch (1, bands, T, T) float32 to vessel probabilities (1, 1, T, T).
Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class Confusion:
    """Pixel counts of a binary segmentation pooled over images; the IoUs are the rig's
    (:func:`hil.score.ious`), so the search and hil cannot define them differently."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        for key, n in pixel_counts(pred, truth).items():
            self.counts[key] += n

    @property
    def vessel_iou(self) -> float:
        """IoU of the vessel class; 1.0 if there are no vessels and none were predicted."""
        return ious(self.counts)["vessel_iou"]

    @property
    def background_iou(self) -> float:
        return ious(self.counts)["background_iou"]

    @property
    def miou(self) -> float:
        """Mean of the vessel and background IoUs."""
        return ious(self.counts)["miou"]


def predict_scene(predict: Predictor, image: np.ndarray, norm: Normalization, tile: int,
                  counts: str | None = None) -> np.ndarray:
    """Vessel probability (H, W) for a (bands, H, W) count image, inferred tile by tile.

    Tiled as flightsim tiles a scene and each tile made into the model's input by the payload's own
    :class:`runtime.preprocess.Preprocessor` (normalised on the host in f32, edge tiles padded), so
    the search scores exactly what the payload would compute. ``counts`` (``uint8``/``uint16``): the
    predictor is an IR that normalises its own input (:mod:`search.input_types`) and gets the counts
    in that type, edge tiles padded with the band means."""
    return predict_scene_maps(predict, image, norm, tile, 1, counts)[0]


def predict_scene_maps(predict: Predictor, image: np.ndarray, norm: Normalization, tile: int, channels: int,
                       counts: str | None = None) -> np.ndarray:
    """The first ``channels`` maps the predictor gives, (channels, H, W), tiled and prepared as
    :func:`predict_scene` does: for a predictor with several outputs stacked on axis 1 (a land
    gate read out beside the vessel probability: scripts/land_gate_quality.py), one inference per
    tile for all of them."""
    from flightsim.tiles import tile_grid
    from runtime.preprocess import Preprocessor
    from search.input_types import input_manifest

    bands, h, w = image.shape
    manifest_input = {"normalization": norm.to_manifest()}
    if counts is not None:
        manifest_input = input_manifest(manifest_input, counts)
    prepare = Preprocessor(manifest_input, (1, bands, tile, tile))
    out = np.zeros((channels, h, w), dtype=np.float32)
    for top, left, th, tw in tile_grid(h, w, tile):
        batch, _ = prepare(image[:, top : top + th, left : left + tw], {})
        out[:, top : top + th, left : left + tw] = predict(batch)[0, :channels, :th, :tw]
    return out


def score_scenes(
    predict: Predictor, scenes: list[SceneArrays], norm: Normalization, tile: int, threshold: float,
    counts: str | None = None,
) -> Confusion:
    """Confusion counts of the thresholded predictions over all ``scenes`` (``counts``: see
    :func:`predict_scene`)."""
    return confusion_of(predict_scenes(predict, scenes, norm, tile, counts), scenes, threshold)


def confusion_of(probs: list[np.ndarray], scenes: list[SceneArrays], threshold: float) -> Confusion:
    """Confusion counts of probability maps already computed for ``scenes``, at ``threshold``."""
    conf = Confusion()
    for p, s in zip(probs, scenes):
        conf.add(p >= threshold, s.mask)
    return conf


def torch_predictor(model: torch.nn.Module) -> Predictor:
    """Predictor running the torch model in eval mode (BatchNorm with running statistics)."""
    model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return predict


def ir_predictor(compiled: ov_api.CompiledModel) -> Predictor:
    """Predictor running a compiled OpenVINO model through one reusable infer request."""
    request = compiled.create_infer_request()

    def predict(x: np.ndarray) -> np.ndarray:
        return np.array(request.infer([x])[0], copy=True)

    return predict


def predict_scenes(predict: Predictor, scenes: list[SceneArrays], norm: Normalization, tile: int,
                   counts: str | None = None) -> list[np.ndarray]:
    """Vessel probability maps of ``scenes`` (what :func:`choose_postprocessing` scores)."""
    return [predict_scene(predict, s.image, norm, tile, counts) for s in scenes]


def object_scores(probs: list[np.ndarray], scenes: list[SceneArrays], thresholds: list[float],
                  min_areas: list[int], min_iou: float = 0.5,
                  min_scores: list[float] | tuple[float, ...] = (0.0,)) -> list[dict[str, float]]:
    """Pooled object precision, recall and F1 for each (threshold, smallest vessel in pixels,
    lowest mean vessel probability: the runtime's ``min_score``).

    Outlines come from the runtime's own vectoriser and are matched as hil matches them, so the
    figure is the one a payload would produce (within the tiling: maps here are whole scenes).
    """
    import shapely.geometry
    from affine import Affine

    from flightsim.sources.base import mask_to_vessels
    from hil.score import match_objects, precision_recall_f1
    from runtime.vectorize import vectorize

    # hil's truth: each annotated vessel (its instance labels), not the mask's connected components
    truths = [mask_to_vessels(s.mask, Affine.identity()) if getattr(s, "labels", None) is None
              else mask_to_vessels(s.labels > 0, Affine.identity(), labels=s.labels) for s in scenes]
    rows = []
    for threshold in thresholds:
        found = [[(shapely.geometry.shape(f["geometry"]), f["properties"]["area_px"], f["properties"]["score"])
                  for f in vectorize(p, threshold, Affine.identity(), None, min_area_px=1)] for p in probs]
        for min_area in min_areas:
            for min_score in min_scores:
                tp = n_pred = n_truth = 0
                for dets, truth in zip(found, truths):
                    # the runtime's rule (runtime.vectorize): mean probability >= min_score
                    pred = [g for g, area, score in dets if area >= min_area and score >= min_score]
                    m = match_objects(pred, truth, min_iou)
                    tp, n_pred, n_truth = tp + m["true_positives"], n_pred + m["n_predicted"], n_truth + m["n_truth"]
                precision, recall, f1 = precision_recall_f1(tp, n_pred, n_truth)
                rows.append({"threshold": threshold, "min_area_px": min_area, "min_score": float(min_score),
                             "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)})
    return rows


def has_true_vessel(scene: SceneArrays) -> bool:
    """Whether ``scene`` holds a vessel that :func:`object_scores` counts as truth (its instance
    labels where it has them, else its mask): a pixel of either is at least one vessel."""
    labels = getattr(scene, "labels", None)
    return bool((labels > 0).any()) if labels is not None else bool(scene.mask.any())


def require_true_vessels(scenes: list[SceneArrays], where: str, remedy: str) -> None:
    """Refuse to choose a cut by object F1 on ``scenes`` (``where``: which split, for the message)
    when none of them holds a true vessel.

    Why: with no truth, hil's F1 (:func:`hil.score.precision_recall_f1`) is 1 for a cut that finds
    nothing and 0 for every other, so the "best" cut is the one that blinds the model, and it
    would be written into the flight manifest as if chosen on evidence.

    Raises:
        ValueError: naming ``where``, how many samples it holds, and ``remedy`` (what to change).
    """
    if not any(has_true_vessel(s) for s in scenes):
        raise ValueError(f"{where} holds no true vessel in its {len(scenes)} sample(s): object F1 there is 1 for a "
                         "cut that finds nothing and 0 for any other, so no threshold or cut can be chosen on it; "
                         f"{remedy}")


def choose_postprocessing(rows: list[dict[str, float]]) -> dict[str, float]:
    """The row with the best F1; ties go to the threshold nearest 0.5, then the smaller size, then
    the lower score cut."""
    return max(rows, key=lambda r: (r["f1"], -abs(r["threshold"] - 0.5), -r["min_area_px"], -r.get("min_score", 0.0)))


def golden_tile(scenes: list[SceneArrays], tile: int) -> np.ndarray:
    """The tile of ``scenes`` (counts, as a payload receives them) with the most vessel pixels: the
    bundle's golden tile (runtime.golden), so that the acceptance test sees the model find ships."""
    best, best_count = None, -1
    for s in scenes:
        h, w = s.mask.shape
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                count = int(s.mask[top:top + tile, left:left + tile].sum())
                if count > best_count:
                    best, best_count = s.image[:, top:top + tile, left:left + tile], count
    if best is None:
        raise ValueError("no scene to take a golden tile from")
    return np.ascontiguousarray(best)
