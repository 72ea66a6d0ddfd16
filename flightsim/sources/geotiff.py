"""Any GeoTIFF (or other single image GDAL reads), with an optional truth file.

The truth is a mask GeoTIFF on the scene's grid (nonzero = vessel) or a GeoJSON of vessel polygons
in the scene's CRS; either way both forms come back, so pixel and object scores use one truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from shapely.geometry import shape

from flightsim.sources.base import Georef, Sample, Source, _open, mask_to_vessels, read_image, vessels_to_mask

TRUTH_SUFFIXES = (".tif", ".tiff", ".geojson", ".json")


def read_truth_file(path: str | Path, sample: Sample) -> Sample:
    """Attach the truth in ``path`` (mask GeoTIFF or vessel GeoJSON) to ``sample``.

    Raises:
        ValueError: naming the file: missing, of another size than the scene, not a FeatureCollection,
            or of a suffix other than those in ``TRUTH_SUFFIXES``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such truth file")
    shape_hw = (sample.height, sample.width)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        with _open(path) as src:
            if (src.height, src.width) != shape_hw:
                raise ValueError(f"{path}: mask is {src.height}x{src.width}, scene is {shape_hw[0]}x{shape_hw[1]}")
            mask = (src.read(1) > 0).astype(np.uint8)
        sample.mask, sample.vessels = mask, mask_to_vessels(mask, sample.transform)
        return sample
    if suffix in (".geojson", ".json"):
        try:
            collection = json.loads(path.read_text())
            vessels = [shape(f["geometry"]) for f in collection["features"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: not a GeoJSON FeatureCollection of polygons: {exc}") from None
        sample.vessels, sample.mask = vessels, vessels_to_mask(vessels, sample.transform, shape_hw)
        return sample
    raise ValueError(f"{path}: truth must be a mask GeoTIFF or a GeoJSON; valid: {list(TRUTH_SUFFIXES)}")


class GeoTIFFSource(Source):
    """One scene file, read window by window when it is a GeoTIFF; ``truth`` is optional."""

    kind = "geotiff"

    def __init__(self, root: str | Path, truth: str | Path | None = None, georef: Georef | None = None,
                 limit: int | None = None):
        super().__init__(root, georef, limit)
        if not self.root.is_file():
            raise ValueError(f"{self.root}: no such file; give a GeoTIFF (or other image) path")
        self.truth = Path(truth) if truth else None

    def __len__(self) -> int:
        return 1

    def _load(self, index: int) -> Sample:
        sample = read_image(self.root, self.georef)
        return read_truth_file(self.truth, sample) if self.truth else sample

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "truth": str(self.truth) if self.truth else None}
