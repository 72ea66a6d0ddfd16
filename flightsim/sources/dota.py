"""DOTA: ``images/<stem>.png`` with ``labelTxt/<stem>.txt``, one quadrilateral per line.

A label line is ``x1 y1 x2 y2 x3 y3 x4 y4 category difficult`` in pixels; the optional first lines
``imagesource:...`` and ``gsd:<metres>`` (or ``gsd:null``) are metadata. Only ``categories``
(default ``["ship"]``) are vessels. A numeric ``gsd`` line, when neither the user (``--gsd``) nor the
image's own georeference gives the gsd, is the image's: with no CRS either, on a local metric plane.
"""

from __future__ import annotations

import math
from pathlib import Path

import shapely
from shapely.geometry import Polygon

from flightsim.sources.base import Georef, Sample, Source, read_image, with_truth_from_pixels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def parse_dota_labels(path: Path, categories: list[str]) -> tuple[list[Polygon], float | None]:
    """The quadrilaterals of ``categories`` in a DOTA label file, and its gsd (None if absent).

    Raises:
        ValueError: naming the file and line, for a line that is neither metadata nor 8 numbers,
            a category and an optional difficulty.
    """
    polys, gsd = [], None
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("imagesource:"):
            continue
        if line.startswith("gsd:"):
            value = line[4:].strip()
            try:
                gsd = float(value) if value.lower() not in ("null", "none", "") else None
            except ValueError:
                raise ValueError(f"{path}:{n}: gsd {value!r} is not a number or null") from None
            if gsd is not None and not (math.isfinite(gsd) and gsd > 0):
                raise ValueError(f"{path}:{n}: gsd {value!r} must be a positive number of metres per pixel, or null")
            continue
        parts = line.split()
        if len(parts) not in (9, 10):
            raise ValueError(f"{path}:{n}: expected 'x1 y1 ... x4 y4 category [difficult]', got {len(parts)} fields")
        try:
            coords = [float(v) for v in parts[:8]]
        except ValueError:
            raise ValueError(f"{path}:{n}: a corner coordinate is not a number") from None
        if parts[8] not in categories:
            continue
        poly = shapely.make_valid(Polygon(list(zip(coords[0::2], coords[1::2]))))
        polys.extend(g for g in getattr(poly, "geoms", [poly]) if isinstance(g, Polygon) and g.area > 0)
    return polys, gsd


class DotaSource(Source):
    """A DOTA folder (``images/``, ``labelTxt/``); ``categories`` are the vessel classes."""

    kind = "dota"

    def __init__(self, root: str | Path, categories: list[str] | None = None, georef: Georef | None = None,
                 limit: int | None = None):
        super().__init__(root, georef, limit)
        self.categories = categories or ["ship"]
        self.labels = sorted((self.root / "labelTxt").glob("*.txt"))
        if not self.labels:
            raise ValueError(f"{self.root}: no labelTxt/*.txt (DOTA layout: images/, labelTxt/)")

    def __len__(self) -> int:
        return self._limited(len(self.labels))

    def _load(self, index: int) -> Sample:
        label = self.labels[index]
        polys, gsd = parse_dota_labels(label, self.categories)
        image = next((self.root / "images" / f"{label.stem}{s}" for s in IMAGE_SUFFIXES
                      if (self.root / "images" / f"{label.stem}{s}").is_file()), None)
        if image is None:
            raise ValueError(f"{label}: its image {label.stem}.* is not in {self.root / 'images'}")
        # The label's gsd fills in only what neither the user nor the image's own georeference gives.
        sample = read_image(image, self.georef, gsd=gsd, gsd_from=label.name)
        sample.notes.append(f"truth: {len(polys)} quadrilaterals of {self.categories}, rasterized for the mask")
        return with_truth_from_pixels(sample, polys)
