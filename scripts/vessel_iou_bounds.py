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
their share of the ships' pixels. ``--by-size`` adds, per ship size, the ships' share of all ship
pixels and how much of them the mask covers at the bundle's threshold.
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
from runtime.discriminate import Discriminator, component_features  # noqa: E402

EIGHT = np.ones((3, 3), bool)


def pixel_counts(prob: np.ndarray, truth: np.ndarray, image: np.ndarray, threshold: float, grow: float | None,
                 min_area_px: int, discriminator: Discriminator | None) -> dict[str, tuple[int, int]]:
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
    parser.add_argument("--by-size", action="store_true",
                        help="also the share of each ship size's pixels the mask finds, at the bundle's threshold")
    args = parser.parse_args(argv)
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
    if args.by_size:
        masks = [prob >= bundle.threshold for prob in probs]
        print(f"\nships by size (pixels), at the bundle's threshold {bundle.threshold}\n\n"
              "| size | ships | share of ship pixels | share of their pixels in the mask |\n|---|---|---|---|")
        edges = [*SIZE_BINS[1:], None]
        for (edge, n, px, recall), upper in zip(recall_by_size(masks, truths), edges):
            size = f"{edge}-{upper - 1}" if upper else f">= {edge}"
            print(f"| {size} | {n} | {px / truth_px:.0%} | {recall:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
