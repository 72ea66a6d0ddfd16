"""The Airbus Ship Detection layout: JPEG images and a CSV of run-length encoded ship masks.

``train_ship_segmentations_v2.csv`` (any ``*.csv`` in the folder) has the columns ``ImageId`` and
``EncodedPixels``: one row per ship, or one row with an empty ``EncodedPixels`` for an image without
ships. A run-length string is ``start length start length ...`` with 1-based starts over the image
flattened column by column (top to bottom, then left to right). Images are in ``train_v2/``,
``images/`` or the folder itself.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from flightsim.sources.base import Georef, Sample, Source, mask_to_vessels, read_image


def decode_airbus_rle(text: str, shape_hw: tuple[int, int]) -> np.ndarray:
    """One ship's mask from an Airbus run-length string (1-based starts, column-major).

    Raises:
        ValueError: if the string has an odd number of integers, a start below 1, or a run beyond
            the image.
    """
    h, w = shape_hw
    try:
        values = np.asarray([int(v) for v in text.split()], dtype=np.int64)
    except ValueError:
        raise ValueError(f"run-length string is not integers: {text[:40]!r}") from None
    if values.size % 2:
        raise ValueError("run-length string has an odd number of integers (start without a length)")
    starts, lengths = values[0::2] - 1, values[1::2]
    if (starts < 0).any() or (lengths < 0).any() or (starts + lengths > h * w).any():
        raise ValueError(f"a run lies outside the {h}x{w} image")
    flat = np.zeros(h * w, dtype=np.uint8)
    for s, n in zip(starts.tolist(), lengths.tolist()):
        flat[s:s + n] = 1
    return flat.reshape(w, h).T.copy()


def encode_airbus_rle(mask: np.ndarray) -> str:
    """The Airbus run-length string of a binary mask (for tests and for writing annotations)."""
    flat = np.concatenate([[0], np.asarray(mask, dtype=np.uint8).T.reshape(-1), [0]])
    edges = np.flatnonzero(np.diff(flat)) + 1
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts.tolist(), ends.tolist()))


class AirbusSource(Source):
    """The images named in an Airbus CSV, each with the union of its ships' masks as truth."""

    kind = "airbus"

    def __init__(self, root: str | Path, georef: Georef | None = None, limit: int | None = None):
        super().__init__(root, georef, limit)
        folder = self.root.parent if self.root.is_file() else self.root
        csvs = [self.root] if self.root.is_file() else sorted(folder.glob("*.csv"))
        if not csvs:
            raise ValueError(f"{self.root}: no .csv of run-length masks (Airbus layout)")
        self.csv = csvs[0]
        self.image_dir = next((d for d in (folder / "train_v2", folder / "images") if d.is_dir()), folder)
        self.ships: dict[str, list[str]] = {}
        with open(self.csv, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"ImageId", "EncodedPixels"} <= set(reader.fieldnames):
                raise ValueError(f"{self.csv}: columns are {reader.fieldnames}; expected ImageId, EncodedPixels")
            for row in reader:
                rle = (row["EncodedPixels"] or "").strip()
                self.ships.setdefault(row["ImageId"], [])
                if rle and rle.lower() != "nan":
                    self.ships[row["ImageId"]].append(rle)
        self.image_ids = sorted(self.ships)
        if not self.image_ids:
            raise ValueError(f"{self.csv}: no rows")

    def __len__(self) -> int:
        return self._limited(len(self.image_ids))

    def _load(self, index: int) -> Sample:
        image_id = self.image_ids[index]
        path = self.image_dir / image_id
        if not path.is_file():
            raise ValueError(f"{self.csv}: image {image_id!r} is not in {self.image_dir}")
        sample = read_image(path, self.georef)
        shape_hw = (sample.height, sample.width)
        labels = np.zeros(shape_hw, np.int32)
        for n, rle in enumerate(self.ships[image_id], start=1):
            try:
                labels[decode_airbus_rle(rle, shape_hw) > 0] = n
            except ValueError as exc:
                raise ValueError(f"{self.csv}: {image_id} ship {n}: {exc}") from None
        mask = (labels > 0).astype(np.uint8)
        sample.mask, sample.vessels = mask, mask_to_vessels(mask, sample.transform, labels=labels)
        sample.notes.append(f"truth: {len(self.ships[image_id])} run-length masks from {self.csv.name}")
        return sample
