"""How far post-processing can take a network's pooled vessel IoU: the network's mask, what its
second stage keeps, and what a perfect second stage would keep, at several thresholds.

    .venv/bin/python scripts/vessel_iou_bounds.py --model models/sar --split out/sar2/data/split.json:val \\
        --set coco --thresholds 0.5 0.6 0.7 0.8 0.9 --grow 0.7 0.5 0.3 [--by-size]

The bundle runs on the flight device (default the twin) tile by tile on hil's grid (no overlap),
and the tiles' probabilities are put back together per sample. Then, for each threshold (and each
hysteresis ``--grow`` level: components of ``prob >= grow`` that hold a pixel ``>= threshold``),
the 8-connected components of at least the bundle's smallest vessel are scored, pooled over every
pixel of the chosen samples:

- ``mask``: every component (the network's mask, what hil's ``vessel_iou`` measures at the
  bundle's threshold);
- ``second stage``: the components the bundle's discriminator keeps (its features measured on the
  whole sample here; on board each tile measures its own, so near tile borders they differ a little);
- ``oracle``: exactly the components that touch a true vessel: what a perfect second stage could
  reach without changing a pixel of the network's output. The gap between ``oracle`` and 1 is the
  segmentation's; the gap between ``second stage`` and ``oracle`` is the rejection's.

Two more columns say what the mask makes of the ships (each 8-connected piece of the truth mask):
how many some component matches at IoU >= 0.5 (what the object F1 can count at best), and how
many are only overlapped below 0.5 (fragmented, merged with a neighbour or with clutter), with
their share of the ships' pixels. ``--edges`` adds where the mask's pixel errors lie against the
true outlines (:func:`edge_errors`; with ``--land-masks``, on the sea only). ``--by-size`` adds,
per ship size, the ships' share of all ship pixels and how much of them the mask covers at the
bundle's threshold.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flightsim.tiles import tile_grid  # noqa: E402
from runtime.candidate_features import component_features  # noqa: E402
from runtime.discriminate import SecondStage  # noqa: E402

EIGHT = np.ones((3, 3), bool)


def pixel_counts(prob: np.ndarray, truth: np.ndarray, image: np.ndarray, threshold: float, grow: float | None,
                 min_area_px: int, discriminator: SecondStage | None) -> dict[str, tuple[int, int]]:
    """(intersection, union) with ``truth`` of the mask, the second stage's and the oracle's
    components of one sample (see the module docstring)."""
    low = prob >= (threshold if grow is None else min(grow, threshold))
    labels, n = ndimage.label(low, EIGHT)
    keep = {"mask": np.zeros(truth.shape, bool), "oracle": np.zeros(truth.shape, bool)}
    if discriminator is not None:
        keep["second stage"] = np.zeros(truth.shape, bool)
    if n:
        index = np.arange(1, n + 1)
        largest = ndimage.maximum(prob, labels, index)
        mean = ndimage.mean(prob, labels, index)
        area = ndimage.sum(low, labels, index)
        for i, box in enumerate(ndimage.find_objects(labels)):
            if largest[i] < threshold or area[i] < max(min_area_px, 1):
                continue
            component = labels[box] == i + 1
            keep["mask"][box] |= component
            if (truth[box] & component).any():
                keep["oracle"][box] |= component
            if discriminator is not None:
                row = component_features(image, component, box[0].start, box[1].start, float(mean[i]),
                                         float(largest[i]), discriminator.ring_px)
                if discriminator.probability(row[None])[0] >= discriminator.cut:
                    keep["second stage"][box] |= component
    counts = {name: (int((m & truth).sum()), int((m | truth).sum())) for name, m in keep.items()}
    return counts | {"ships": ships_found(labels * keep["mask"], truth)}


def ships_found(labels: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """(vessels, vessels some component matches at IoU >= 0.5, vessels only overlapped below 0.5,
    pixels of the latter): whole ships against fragments and merges. ``labels``: the components
    (0: none)."""
    vessels, n = ndimage.label(truth, EIGHT)
    found = partial = partial_px = 0
    for i, box in enumerate(ndimage.find_objects(vessels)):
        vessel = vessels == i + 1
        best = 0.0
        for label in np.unique(labels[box][vessel[box]]):
            if label:
                component = labels == label
                best = max(best, (vessel & component).sum() / (vessel | component).sum())
        found += best >= 0.5
        if 0 < best < 0.5:
            partial, partial_px = partial + 1, partial_px + int(vessel.sum())
    return n, found, partial, partial_px


#: Ship sizes (pixels of an 8-connected piece of the truth mask) that ``--by-size`` reports apart.
SIZE_BINS = (0, 150, 400, 1000)


def recall_by_size(masks: list[np.ndarray], truths: list[np.ndarray],
                   bins: tuple[int, ...] = SIZE_BINS) -> list[tuple[int, int, int, float]]:
    """Per ship size, from each edge of ``bins`` to the next (the last open-ended): (lower edge,
    ships, their pixels, the share of those pixels inside ``masks``): where a pooled pixel figure
    gains and loses, since a few large ships can hold most of the pixels."""
    rows = {edge: [0, 0, 0] for edge in bins}
    for mask, truth in zip(masks, truths):
        vessels, n = ndimage.label(truth, EIGHT)
        if not n:
            continue
        sizes = np.bincount(vessels.ravel(), minlength=n + 1)[1:]
        found = np.bincount(vessels[mask], minlength=n + 1)[1:]
        for size, hit in zip(sizes, found):
            row = rows[bins[int(np.searchsorted(bins, size, side="right")) - 1]]
            row[0], row[1], row[2] = row[0] + 1, row[1] + int(size), row[2] + int(hit)
    return [(edge, n, px, hit / px if px else float("nan")) for edge, (n, px, hit) in rows.items()]


#: Distances in pixels that ``--edges`` sorts the mask's errors by: up to the first from the true
#: edge is a disagreement about the outline; past the second, a part missed or a thing that is not
#: the ship.
EDGE_PX = (1.5, 3.0)


def edge_errors(masks: list[np.ndarray], truths: list[np.ndarray], seas: list[np.ndarray | None] | None = None,
                edges: tuple[float, float] = EDGE_PX) -> dict[str, float]:
    """Where a mask's pixel errors lie against the true outlines, pooled, as shares of all ship
    pixels: ``missed`` ship pixels by their depth inside the ship (within ``edges[0]`` px of its
    edge, up to ``edges[1]``, deeper) and those of ships no pixel finds, ``extra`` mask pixels by
    their distance outside the nearest ship (the same bands), and the vessel IoU as it is and with
    the mask grown by one pixel (4-neighbours), which says whether the outlines are biased (grown
    is better: too thin) or only noisy; and, for scale, the IoU of the truth itself one pixel
    thinner and one pixel wider, what a one-pixel disagreement alone costs on ships of these
    sizes. ``seas`` (True = sea, or None for all sea) clears the mask on land first: what the
    outlines cost where land is not the question."""
    near, mid = edges
    totals = dict.fromkeys(("ship_px", "missed_near", "missed_mid", "missed_deep", "missed_whole",
                            "extra_near", "extra_mid", "extra_far", "inter", "union", "inter_grown",
                            "union_grown", "truth_thinner", "truth_wider"), 0)
    cross = ndimage.generate_binary_structure(2, 1)
    for mask, truth, sea in zip(masks, truths, seas or [None] * len(masks)):
        grown = ndimage.binary_dilation(mask, cross)
        if sea is not None:
            mask, grown = mask & sea, grown & sea
        ships, n = ndimage.label(truth, EIGHT)
        unfound = np.flatnonzero(np.bincount(ships[mask & truth], minlength=n + 1)[1:] == 0) + 1
        whole = np.isin(ships, unfound) & truth
        depth = ndimage.distance_transform_edt(truth)
        missed = truth & ~mask & ~whole
        # (scipy measures from an imaginary edge when there is no ship at all: none is near)
        outside = ndimage.distance_transform_edt(~truth) if n else np.full(truth.shape, np.inf)
        extra = mask & ~truth
        for key, value in (("ship_px", truth), ("missed_whole", whole), ("missed_near", missed & (depth <= near)),
                           ("missed_mid", missed & (depth > near) & (depth <= mid)), ("missed_deep", missed & (depth > mid)),
                           ("extra_near", extra & (outside <= near)), ("extra_mid", extra & (outside > near) & (outside <= mid)),
                           ("extra_far", extra & (outside > mid)), ("inter", mask & truth), ("union", mask | truth),
                           ("inter_grown", grown & truth), ("union_grown", grown | truth),
                           ("truth_thinner", ndimage.binary_erosion(truth, cross)),
                           ("truth_wider", ndimage.binary_dilation(truth, cross))):
            totals[key] += int(value.sum())
    ship_px = max(totals.pop("ship_px"), 1)
    out = {key: totals[key] / ship_px for key in totals if key.startswith(("missed", "extra"))}
    out["iou"] = totals["inter"] / max(totals["union"], 1)
    out["iou_grown"] = totals["inter_grown"] / max(totals["union_grown"], 1)
    # erosion lies inside the truth and dilation holds it: each IoU is a ratio of pixel counts
    out["truth_thinner_iou"] = totals["truth_thinner"] / ship_px
    out["truth_wider_iou"] = ship_px / max(totals["truth_wider"], 1)
    return out


def stitched_probabilities(bundle_dir: Path, samples: list[Any], device: str) -> list[np.ndarray]:
    """The bundle's vessel probabilities over each whole sample, tile by tile on hil's grid."""
    from runtime.bundle import read_bundle
    from runtime.device import open_device
    from runtime.preprocess import Preprocessor

    bundle = read_bundle(bundle_dir)
    adapter = open_device(bundle, device, lambda out, data: None, infer_requests=1)
    prep = Preprocessor(bundle.manifest["input"], adapter.input_shape)
    tile = adapter.input_shape[-1]
    probs = []
    for sample in samples:
        image = np.asarray(sample.image)
        prob = np.zeros(image.shape[1:], np.float32)
        for row, col, h, w in tile_grid(image.shape[1], image.shape[2], tile):
            batch, _ = prep(image[:, row:row + h, col:col + w], {})
            prob[row:row + h, col:col + w] = adapter.infer(batch)[0, 0][:h, :w]
        probs.append(prob)
    return probs


def main(argv: list[str] | None = None) -> int:
    from hil.__main__ import split_source
    from runtime.bundle import read_bundle

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="flight model bundle")
    parser.add_argument("--split", required=True, help="SPLIT.json:val (choose nothing on :test)")
    parser.add_argument("--set", default="", help="only samples whose name starts with this (e.g. coco)")
    parser.add_argument("--thresholds", type=float, nargs="+", help="default: the bundle's threshold")
    parser.add_argument("--grow", type=float, nargs="*", default=[], help="hysteresis levels to try too")
    parser.add_argument("--device", default="myriadx-emu")
    parser.add_argument("--edges", action="store_true",
                        help="also where the mask's pixel errors lie against the true outlines, at the bundle's threshold")
    parser.add_argument("--land-masks", type=Path,
                        help="with --edges: sea/land masks <sample>.png (0 = land, as SSDD's sealand/) cleared first")
    parser.add_argument("--by-size", action="store_true",
                        help="also the share of each ship size's pixels the mask finds, at the bundle's threshold")
    args = parser.parse_args(argv)
    if args.land_masks is not None and not (args.edges and args.land_masks.is_dir()):
        parser.error(f"--land-masks {args.land_masks}: needs --edges and a folder of <sample>.png masks")
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    bundle = read_bundle(args.model)
    samples = [s for s in split_source(args.split) if s.name.startswith(args.set)]
    for s in samples:
        s.load()
    probs = stitched_probabilities(args.model, samples, args.device)
    truths = [s.mask.astype(bool) for s in samples]
    truth_px = sum(int(t.sum()) for t in truths)
    print(f"{args.model} on {args.split} ({len(samples)} samples{', ' + args.set if args.set else ''}), "
          f"device {args.device}; pooled vessel IoU\n")
    names = ["mask", "second stage", "oracle"] if bundle.discriminator is not None else ["mask", "oracle"]
    print("| threshold | grow | " + " | ".join(names) + " | ships matched (IoU >= 0.5) by the mask "
          "| ships only overlapped below 0.5 (their share of ship pixels) |\n|---|---|" + "---|" * (len(names) + 2))
    for threshold in args.thresholds or [bundle.threshold]:
        for grow in [None, *[g for g in args.grow if g < threshold]]:
            total = {n: np.zeros(2) for n in names}
            ships = np.zeros(4)
            for sample, prob, truth in zip(samples, probs, truths):
                counts = pixel_counts(prob, truth, np.asarray(sample.image), threshold, grow,
                                      bundle.min_area_px or 4, bundle.discriminator)
                for n in names:
                    total[n] += counts[n]
                ships += counts["ships"]
            cells = " | ".join(f"{total[n][0] / total[n][1]:.3f}" for n in names)
            print(f"| {threshold} | {'-' if grow is None else grow} | {cells} | {int(ships[1])} of {int(ships[0])} "
                  f"| {int(ships[2])} ({ships[3] / truth_px:.0%}) |")
    masks = [prob >= bundle.threshold for prob in probs] if args.edges or args.by_size else []
    if args.edges:
        from hil.rig import sea_mask

        seas = [sea_mask(s, args.land_masks) for s in samples] if args.land_masks else None
        e = edge_errors(masks, truths, seas)
        print(f"\nthe mask's pixel errors against the true outlines, at the bundle's threshold {bundle.threshold}"
              f"{', land cleared with ' + str(args.land_masks) if seas else ''} (shares of all ship pixels)\n\n"
              f"| | within {EDGE_PX[0]} px of the edge | {EDGE_PX[0]}-{EDGE_PX[1]} px | further | whole ships |\n"
              f"|---|---|---|---|---|\n"
              f"| ship pixels missed (by depth inside the ship) | {e['missed_near']:.3f} | {e['missed_mid']:.3f} "
              f"| {e['missed_deep']:.3f} | {e['missed_whole']:.3f} |\n"
              f"| mask pixels outside the ships (by distance) | {e['extra_near']:.3f} | {e['extra_mid']:.3f} "
              f"| {e['extra_far']:.3f} | |\n\n"
              f"vessel IoU {e['iou']:.3f}; with the mask grown by one pixel {e['iou_grown']:.3f}; for scale, the "
              f"truth one pixel thinner {e['truth_thinner_iou']:.3f}, one pixel wider {e['truth_wider_iou']:.3f}")
    if args.by_size:
        print(f"\nships by size (pixels), at the bundle's threshold {bundle.threshold}\n\n"
              "| size | ships | share of ship pixels | share of their pixels in the mask |\n|---|---|---|---|")
        edges = [*SIZE_BINS[1:], None]
        for (edge, n, px, recall), upper in zip(recall_by_size(masks, truths), edges):
            size = f"{edge}-{upper - 1}" if upper else f">= {edge}"
            print(f"| {size} | {n} | {px / truth_px:.0%} | {recall:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
