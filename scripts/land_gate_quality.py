"""How well a flight network's land gate finds land, and what the land it misses costs in vessel IoU.

A network with ``[train] land_gate`` multiplies its vessel probability by its own sea probability
(:class:`search.network.GenomeNet`). This script runs the bundle's IR on CPU in f32 with the gate's
sea probability as a second output, on the samples of a prepared data directory that have sea/land
masks (``[data] land_masks``: SSDD's hand-drawn masks), and reports

* the share of the masks' land pixels the gate calls land (sea probability < 0.5), and of their sea
  pixels it calls land;
* the pooled vessel-pixel budget at the bundle's threshold: pixels right, false pixels on land,
  false pixels on sea, missed pixels, and the vessel IoU they make; for the flown output, for the
  vessel probability before the gate, and for each with the hand-drawn land removed (the oracle
  the gate stands in for).

Where the flown output's false pixels on land lie (``where_on_land``): by their distance to the
nearest pixel not labelled land, how many lie within :data:`NEAR_SHIP_PX` of a ship, and the share
held by the samples with the most of them: a gate that misses land along the quays wants a finer
gate, one that misses whole built-up areas in a few chips wants a better one.

``--sea-shifts`` asks what a gate leaning further towards land would do: for each shift ``b`` the
gate's sea logit is lowered by ``b`` (the sea probability recomputed from the one read out) and the
land recall and the flown budget are given again, so a post-hoc bias on the sea head is priced
before anyone trains or ships one.

Pixel masks only: no second stage, no outlines (``scripts/vessel_iou_bounds.py`` scores those).

    .venv/bin/python scripts/land_gate_quality.py --model models/sar --data out/sar6/data --split val [--sea-shifts 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.bundle import read_bundle  # noqa: E402
from runtime.host import host_line  # noqa: E402

#: Sea probability under which the gate is said to call a pixel land.
LAND_BELOW = 0.5
#: Budget keys: pixels right, false on labelled land, false on labelled sea, missed.
BUDGET = ("right", "false_on_land", "false_on_sea", "missed")
#: Upper edges (px) of the bins of a false land pixel's distance to the nearest pixel not labelled land
#: (bin "lo-hi" holds distances over lo up to hi; the last, ">64", the rest).
DISTANCE_BINS = (2, 4, 8, 16, 32, 64)
#: A false land pixel this close to a ship pixel (px) counts as "near a ship".
NEAR_SHIP_PX = 16
#: ... and this close to the nearest pixel not labelled land (px; one of DISTANCE_BINS) as "near the sea".
NEAR_SEA_PX = 16


def read_ir(xml: bytes, bin_: bytes) -> Any:
    """An IR's bytes as an OpenVINO model."""
    import openvino as ov

    return ov.Core().read_model(xml.decode(), ov.Tensor(np.frombuffer(bin_, dtype=np.uint8)))


def gate_sigmoids(model: Any, name: str) -> tuple[Any, Any]:
    """The vessel and the sea Sigmoid whose product is the model's output
    (search.network.GenomeNet.forward multiplies the vessel probability by the sea probability).

    Raises:
        ValueError: when the network's output is not a Multiply of two Sigmoids (no land gate).
    """
    product = model.outputs[0].get_node().input_value(0).get_node()
    inputs = [product.input_value(i).get_node() for i in range(product.get_input_size())] \
        if product.get_type_name() == "Multiply" else []
    if len(inputs) != 2 or any(n.get_type_name() != "Sigmoid" for n in inputs):
        raise ValueError(f"{name}: the output is not a vessel Sigmoid times a sea Sigmoid; the network flies no land gate")
    return inputs[0], inputs[1]


def gated_outputs(xml: bytes, bin_: bytes, name: str) -> Any:
    """The IR compiled on CPU in f32 with three outputs: the flown probability, the vessel
    probability before the gate and the gate's sea probability.

    Raises:
        ValueError: when the network flies no land gate (:func:`gate_sigmoids`).
    """
    import openvino as ov

    model = read_ir(xml, bin_)
    model.add_outputs([node.output(0) for node in gate_sigmoids(model, name)])
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def budget(predicted: np.ndarray, truth: np.ndarray, land: np.ndarray) -> np.ndarray:
    """Counts of :data:`BUDGET` for one sample."""
    return np.array([(predicted & truth).sum(), (predicted & ~truth & land).sum(),
                     (predicted & ~truth & ~land).sum(), (~predicted & truth).sum()], dtype=np.int64)


def vessel_iou(counts: np.ndarray) -> float:
    return float(counts[0] / max(int(counts.sum()), 1))


def shifted(sea: np.ndarray, shift: float) -> np.ndarray:
    """The sea probability after lowering its logit by ``shift`` (kept off 0 and 1 first, where f32
    cannot give the logit back)."""
    from scipy.special import expit, logit

    return expit(logit(np.clip(sea.astype(np.float64), 1e-12, 1 - 1e-12)) - shift).astype(np.float32)


def where_on_land(false_land: np.ndarray, land: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int]:
    """One sample's false land pixels binned by their distance to the nearest pixel not labelled
    land (:data:`DISTANCE_BINS`, the last bin open), and how many lie within :data:`NEAR_SHIP_PX` of
    a ship pixel."""
    from scipy.ndimage import distance_transform_edt

    to_sea = distance_transform_edt(land)[false_land]
    counts = np.bincount(np.searchsorted(DISTANCE_BINS, to_sea), minlength=len(DISTANCE_BINS) + 1)
    near = int((distance_transform_edt(~truth)[false_land] < NEAR_SHIP_PX).sum()) if truth.any() else 0
    return counts, near


def measure(model: Path, data_dir: Path, split: str, sea_shifts: tuple[float, ...] = ()) -> dict[str, Any]:
    """The land recall of the gate and the vessel-pixel budgets over ``split``'s masked samples
    (and, per ``sea_shifts``, the same with the gate's sea logit lowered by that much)."""
    from search.data import LAND_UNKNOWN, Normalization
    from search.dataset import read_split
    from search.evaluate import predict_scene_maps

    bundle = read_bundle(model)
    manifest = bundle.manifest
    norm_cfg = manifest["input"]["normalization"]
    if norm_cfg.get("where", "host") != "host":
        raise ValueError(f"{model}: normalisation {norm_cfg.get('where')!r}; this script feeds f32 normalised on the host")
    norm = Normalization(tuple(norm_cfg["mean"]), tuple(norm_cfg["std"]), norm_cfg.get("scale", "linear"))
    threshold = float(manifest["output"]["threshold"])
    tile = int(manifest["input"]["shape"][-1])
    request = gated_outputs(bundle.files["model.xml"], bundle.files["model.bin"], str(model)).create_infer_request()

    def predict(x: np.ndarray) -> np.ndarray:
        """The three outputs of one tile, stacked on axis 1."""
        outs = request.infer([x])
        return np.concatenate([outs[i] for i in range(3)], axis=1)

    scenes = [s for s in read_split(data_dir, split) if s.land is not None]
    if not scenes:
        raise ValueError(f"{data_dir}: no {split} sample has a sea/land mask")
    land_px = land_called = sea_px = sea_called = 0
    budgets = {name: np.zeros(len(BUDGET), np.int64) for name in
               ("flown", "before the gate", "flown, hand-drawn land removed", "before the gate, hand-drawn land removed")}
    by_distance = np.zeros(len(DISTANCE_BINS) + 1, np.int64)
    near_ships = 0
    per_sample: list[int] = []
    shifts = {b: {"land_called": 0, "sea_called": 0, "budget": np.zeros(len(BUDGET), np.int64)} for b in sea_shifts}
    for scene in scenes:
        flown, vessel, sea = predict_scene_maps(predict, scene.image, norm, tile, 3)
        truth, land = scene.mask > 0, scene.land == 1
        known = scene.land != LAND_UNKNOWN
        land_px += int(land.sum())
        land_called += int((land & (sea < LAND_BELOW)).sum())
        sea_px += int((known & ~land).sum())
        sea_called += int((known & ~land & (sea < LAND_BELOW)).sum())
        called = {"flown": flown >= threshold, "before the gate": vessel >= threshold}
        for name, predicted in called.items():
            budgets[name] += budget(predicted, truth, land)
            budgets[f"{name}, hand-drawn land removed"] += budget(predicted & ~land, truth, land)
        false_land = called["flown"] & ~truth & land
        counts, near = where_on_land(false_land, land, truth)
        by_distance += counts
        near_ships += near
        per_sample.append(int(false_land.sum()))
        for b, acc in shifts.items():
            sea_b = shifted(sea, b)
            acc["land_called"] += int((land & (sea_b < LAND_BELOW)).sum())
            acc["sea_called"] += int((known & ~land & (sea_b < LAND_BELOW)).sum())
            acc["budget"] += budget(vessel * sea_b >= threshold, truth, land)
    return {"model": str(model), "bundle_id": bundle.id, "split": f"{data_dir}:{split}", "samples": len(scenes),
            "threshold": threshold, "numerics": "CPU f32 (INFERENCE_PRECISION_HINT=f32)", "host": host_line(),
            "land_pixels_called_land": land_called / max(land_px, 1), "sea_pixels_called_land": sea_called / max(sea_px, 1),
            "budgets": {name: {**dict(zip(BUDGET, map(int, b))), "vessel_iou": round(vessel_iou(b), 4)}
                        for name, b in budgets.items()},
            "where_on_land": _where_summary(by_distance, near_ships, per_sample),
            "sea_shifts": [{"shift": b, "land_pixels_called_land": acc["land_called"] / max(land_px, 1),
                            "sea_pixels_called_land": acc["sea_called"] / max(sea_px, 1),
                            "flown": {**dict(zip(BUDGET, map(int, acc["budget"]))),
                                      "vessel_iou": round(vessel_iou(acc["budget"]), 4)}}
                           for b, acc in shifts.items()]}


def _where_summary(by_distance: np.ndarray, near_ships: int, per_sample: list[int]) -> dict[str, Any]:
    """The flown output's false land pixels: by distance to the sea, near ships, and how few samples
    hold them."""
    total = max(int(by_distance.sum()), 1)
    edges = (0, *DISTANCE_BINS)
    ranked = sorted(per_sample, reverse=True)
    return {"false_pixels": int(by_distance.sum()),
            "by_distance_to_sea_px": {f"{lo}-{hi}" if hi else f">{lo}": int(n)
                                      for lo, hi, n in zip(edges, (*DISTANCE_BINS, None), by_distance)},
            f"share_within_{NEAR_SEA_PX}_px_of_the_sea": float(by_distance[:DISTANCE_BINS.index(NEAR_SEA_PX) + 1].sum() / total),
            f"share_within_{NEAR_SHIP_PX}_px_of_a_ship": near_ships / total,
            "share_in_the_5_samples_with_most": sum(ranked[:5]) / total,
            "share_in_the_10_samples_with_most": sum(ranked[:10]) / total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a bundle whose network flies a land gate")
    parser.add_argument("--data", type=Path, required=True, help="a prepared data directory (OUT/data of a search)")
    parser.add_argument("--split", default="val", choices=("train", "val"))
    parser.add_argument("--sea-shifts", type=float, nargs="*", default=[],
                        help="lower the gate's sea logit by each of these and report again")
    args = parser.parse_args(argv)
    result = measure(args.model, args.data, args.split, tuple(args.sea_shifts))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
