"""COCO instance annotations: uncompressed or compressed RLE, or polygons (sen2ships).

RLE follows the pycocotools convention, decoded here with numpy (no pycocotools): run lengths
alternate background/foreground starting with background, over the image flattened in column-major
(Fortran) order. ``counts`` is a list of integers (uncompressed) or a string (the compressed form:
LEB128-like 5-bit groups, each count after the second stored as a difference to the one two back).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from flightsim.sources.base import Georef, Sample, Source, mask_to_vessels, read_image, vessels_to_mask


def decode_rle_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools ``rleFrString``)."""
    out: list[int] = []
    p = 0
    data = counts.encode("ascii")
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """A COCO RLE dict ``{"size": [h, w], "counts": ...}`` as an (h, w) uint8 mask.

    Raises:
        ValueError: if the size is not two positive integers, a count is negative, or the runs do
            not add up to h * w.
    """
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f"RLE size must be [height, width], got {size!r}")
    h, w = size
    counts = rle.get("counts")
    if isinstance(counts, str):
        counts = decode_rle_counts(counts)
    if not isinstance(counts, list) or not all(isinstance(c, int) for c in counts):
        raise ValueError("RLE counts must be a list of integers or a compressed string")
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any():
        raise ValueError("RLE has a negative run length")
    if runs.sum() != h * w:
        raise ValueError(f"RLE runs add up to {int(runs.sum())} pixels; size {h}x{w} needs {h * w}")
    values = np.zeros(len(runs), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, runs)
    return flat.reshape(w, h).T.copy()


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """The uncompressed COCO RLE of a binary mask (for tests and for writing annotations)."""
    flat = np.asarray(mask, dtype=np.uint8).T.reshape(-1)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0, *runs]
    return {"size": list(mask.shape), "counts": runs}


def polygons_from_coco(segmentation: list[list[float]]) -> list[Polygon]:
    """COCO polygon segmentation ``[[x1, y1, x2, y2, ...], ...]`` (pixel coordinates) as polygons."""
    polys = []
    for ring in segmentation:
        if not isinstance(ring, list) or len(ring) < 6 or len(ring) % 2:
            raise ValueError("a polygon needs an even number of coordinates, at least 3 points")
        poly = shapely.make_valid(Polygon(np.asarray(ring, dtype=float).reshape(-1, 2)))
        polys.extend(g for g in getattr(poly, "geoms", [poly]) if isinstance(g, Polygon) and g.area > 0)
    return polys


class CocoSource(Source):
    """Every annotated image of one COCO JSON, or of every ``*.json`` under a folder (one per port in
    sen2ships). ``categories`` keeps annotations of these category names (None: all)."""

    kind = "coco"

    def __init__(self, root: str | Path, categories: list[str] | None = None, georef: Georef | None = None,
                 limit: int | None = None):
        super().__init__(root, georef, limit)
        files = [self.root] if self.root.is_file() else sorted(self.root.rglob("*.json"))
        if not files:
            raise ValueError(f"{self.root}: no COCO .json files")
        self.categories = categories
        self.items: list[tuple[Path, dict[str, Any], list[dict[str, Any]]]] = []
        for f in files:
            self._index(f)
        if not self.items:
            raise ValueError(f"{self.root}: no image of the COCO files exists beside them")

    def _index(self, path: Path) -> None:
        try:
            coco = json.loads(path.read_text())
            images, annotations, cats = coco["images"], coco["annotations"], coco["categories"]
            names = {c["id"]: c["name"] for c in cats}
            by_image: dict[Any, list[dict[str, Any]]] = {im["id"]: [] for im in images}
            for a in annotations:
                if self.categories is None or names.get(a["category_id"]) in self.categories:
                    by_image[a["image_id"]].append(a)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not JSON: {exc}") from None
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a COCO file (images, annotations, categories): missing {exc}") from None
        for im in images:
            file = path.parent / im["file_name"]
            if not file.is_file():
                if by_image[im["id"]]:
                    raise ValueError(f"{path}: image {im['file_name']!r} has {len(by_image[im['id']])} annotations "
                                     f"but {file} does not exist")
                self.skipped.append(f"{file.name}: listed in {path.name}, not on disk, no annotations")
                continue
            self.items.append((path, im, by_image[im["id"]]))

    def __len__(self) -> int:
        return self._limited(len(self.items))

    def _load(self, index: int) -> Sample:
        path, im, annotations = self.items[index]
        sample = read_image(path.parent / im["file_name"], self.georef)
        shape_hw = (sample.height, sample.width)
        if (im.get("height"), im.get("width")) not in ((None, None), shape_hw):
            raise ValueError(f"{path}: image {im['file_name']!r} is {shape_hw[0]}x{shape_hw[1]} on disk, "
                             f"{im['height']}x{im['width']} in the annotations")
        mask = np.zeros(shape_hw, np.uint8)
        labels = np.zeros(shape_hw, np.int32)
        for n, a in enumerate(annotations, start=1):
            seg = a.get("segmentation")
            try:
                if isinstance(seg, dict):
                    m = decode_rle(seg)
                    if m.shape != shape_hw:
                        raise ValueError(f"RLE size {list(m.shape)} differs from the image's {list(shape_hw)}")
                elif isinstance(seg, list):
                    m = vessels_to_mask(polygons_from_coco(seg), _identity(), shape_hw)
                else:
                    raise ValueError("segmentation is neither RLE nor polygons")
            except ValueError as exc:
                raise ValueError(f"{path}: annotation {a.get('id')}: {exc}") from None
            labels[m > 0] = n
            mask |= m
        sample.mask = mask
        sample.vessels = mask_to_vessels(mask, sample.transform, labels=labels)
        sample.notes.append(f"truth: {len(annotations)} COCO annotations from {path.name}")
        return sample


def _identity() -> Any:
    from affine import Affine

    return Affine.identity()
