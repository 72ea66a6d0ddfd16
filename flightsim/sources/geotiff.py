"""Any GeoTIFF (or other single image GDAL reads), with an optional truth file.

The truth is a mask GeoTIFF on the scene's grid (nonzero = vessel, nodata = none) or a GeoJSON of vessel polygons;
either way both forms come back, so pixel and object scores use one truth. A GeoJSON with a top-level
``crs`` member (``{"type": "name", "properties": {"name": "EPSG:4326"}}``, what ``flightsim generate``
writes) is reprojected from it to the scene's CRS; one without is taken to be in the scene's CRS. A
truth that lies wholly outside the scene is an error, not an empty truth: RFC 7946 GeoJSON is lon/lat
(EPSG:4326), and read as the scene's projected metres it would silently score nothing. For the same
reason a GeoJSON vessel must be a Polygon or MultiPolygon (a point or a line would score as a miss);
an invalid polygon is made valid, as the COCO and DOTA readers do, so that scoring can overlay it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rasterio.crs import CRS
from rasterio.transform import array_bounds
from rasterio.warp import transform_geom
from shapely.geometry import box, shape

from flightsim.sources.base import Georef, areal_part, Sample, Source, _open, mask_to_vessels, read_image, vessels_to_mask

TRUTH_SUFFIXES = (".tif", ".tiff", ".geojson", ".json")


def read_truth_file(path: str | Path, sample: Sample) -> Sample:
    """Attach the truth in ``path`` (mask GeoTIFF or vessel GeoJSON) to ``sample``.

    Raises:
        ValueError: naming the file: missing, of another size or grid than the scene, not a FeatureCollection,
            with a geometry other than a Polygon or MultiPolygon (``AREAL_TYPES``), with a crs member
            not understood, lying wholly outside the scene (both extents named), or of a suffix other
            than those in ``TRUTH_SUFFIXES``. An invalid polygon is made valid, with a note.
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
            if src.count != 1:  # an image given as its own truth (its first band > 0 almost everywhere)
                raise ValueError(f"{path}: a truth mask has one band (nonzero = vessel); this file has {src.count}: "
                                 "is it the scene itself?")
            _check_same_grid(path, src, sample)
            # A nodata pixel (outside a mask's surveyed footprint, say 255) is no vessel: read as a count
            # it was one, a false vessel as large as the unsurveyed area.
            mask = (src.read(1, masked=True).filled(0) > 0).astype(np.uint8)
        sample.mask, sample.vessels = mask, mask_to_vessels(mask, sample.transform)
        return sample
    if suffix in (".geojson", ".json"):
        try:
            collection = json.loads(path.read_text())
            geometries = [f["geometry"] for f in collection["features"]]
            vessels = [shape(g) for g in geometries]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: not a GeoJSON FeatureCollection of polygons: {exc}") from None
        _check_areal(path, vessels)
        crs = _geojson_crs(path, collection)
        if crs is not None and sample.crs is None:
            raise ValueError(f"{path}: truth is in {crs.to_string()} but the scene has no CRS; give the scene's "
                             "georeference (--crs, --gsd, --origin) or a truth in pixel coordinates without a crs")
        if crs is not None and crs != sample.crs:
            vessels = [shape(transform_geom(crs, sample.crs, g)) for g in geometries]
            sample.notes.append(f"truth reprojected from {crs.to_string()} to the scene's {sample.crs.to_string()}")
        vessels = _valid_vessels(vessels, sample)
        _check_inside(path, vessels, sample, crs)
        sample.vessels, sample.mask = vessels, vessels_to_mask(vessels, sample.transform, shape_hw)
        return sample
    raise ValueError(f"{path}: truth must be a mask GeoTIFF or a GeoJSON; valid: {list(TRUTH_SUFFIXES)}")


#: How far (in pixels) a corner of the scene may land from the same corner of its truth mask's grid.
SAME_GRID_PX = 0.01


def _check_same_grid(path: Path, mask: Any, sample: Sample) -> None:
    """Raise where a georeferenced truth mask lies on another grid than its georeferenced scene.

    A mask is read pixel for pixel onto the scene: one of the same size but stored south-up, shifted,
    of another pixel size or in another CRS put every vessel in the wrong place and scored the run
    against it without a word. A mask or a scene without a georeference of its own cannot be
    compared, and is taken to be on the scene's pixel grid, as before.
    """
    if sample.path is None or (mask.crs is None and mask.transform.is_identity):
        return
    with _open(sample.path) as scene:
        own_crs, own = scene.crs, scene.transform
    if own_crs is None and own.is_identity:
        return
    if own_crs is not None and mask.crs is not None and own_crs != mask.crs:
        raise ValueError(f"{path}: truth mask is in {mask.crs.to_string()}, the scene {sample.path} in "
                         f"{own_crs.to_string()}: a mask must be on the scene's grid (same CRS and transform)")
    if mask.transform.is_identity:  # a CRS but no geotransform: nothing to compare the grid with
        return
    inverse = ~mask.transform
    corners = [(0, 0), (sample.width, 0), (0, sample.height), (sample.width, sample.height)]
    off = max(abs(x - col) + abs(y - row) for col, row in corners for x, y in [inverse * (own * (col, row))])
    if off > SAME_GRID_PX:
        raise ValueError(f"{path}: truth mask is on another grid than the scene {sample.path} (transform "
                         f"{tuple(mask.transform)[:6]}, the scene's {tuple(own)[:6]}: corners up to {off:.3g} px "
                         "apart); a mask must be on the scene's grid (same CRS and transform), or give the truth "
                         "as a GeoJSON")


#: GeoJSON geometry types a truth vessel may have: an outline with an area.
AREAL_TYPES = ("Polygon", "MultiPolygon")


def _check_areal(path: Path, vessels: list[Any]) -> None:
    """Raise unless every truth geometry is a Polygon or MultiPolygon.

    A Point or LineString has no area: scored by IoU it could never match a detection, so a file
    of them would silently score every vessel a miss. A GeometryCollection is refused too (RFC 7946
    discourages it): one of polygons is written as a MultiPolygon, and one mixing points or lines
    in says nothing sure about a vessel's outline.
    """
    for i, v in enumerate(vessels):
        if v.geom_type not in AREAL_TYPES:
            raise ValueError(f"{path}: feature {i} is a {v.geom_type}; a truth vessel is an outline with an "
                             f"area, valid geometry types: {list(AREAL_TYPES)}")


def _valid_vessels(vessels: list[Any], sample: Sample) -> list[Any]:
    """``vessels`` made valid (as the COCO and DOTA readers do), each kept one vessel with only its
    areal part; a feature with no area left is dropped with a note.

    An invalid outline (a self-intersecting "bowtie") makes GEOS refuse the overlays of scoring
    (hil.score.match_objects) after the whole run; made valid here, it keeps its lobes' area.
    """
    out = []
    for i, v in enumerate(vessels):
        if not v.is_valid:
            v = areal_part(v)
            sample.notes.append(f"truth feature {i} was not a valid polygon: made valid" if v is not None
                                else f"truth feature {i} has no area: left out")
        if v is not None:
            out.append(v)
    return out


def _geojson_crs(path: Path, collection: dict[str, Any]) -> CRS | None:
    """The CRS named by a GeoJSON's top-level ``crs`` member (GeoJSON 2008 style), or None without one."""
    member = collection.get("crs")
    if member is None:
        return None
    try:
        name = member["properties"]["name"]
        return CRS.from_user_input(name)
    except Exception as exc:  # KeyError, TypeError, CRSError
        raise ValueError(f"{path}: crs member {member!r} not understood ({exc}); write it as "
                         '{"type": "name", "properties": {"name": "EPSG:32632"}}') from None


def _check_inside(path: Path, vessels: list[Any], sample: Sample, crs: CRS | None) -> None:
    """Raise if there is truth and none of it meets the scene: a truth in another CRS than assumed."""
    if not vessels:
        return
    left, bottom, right, top = array_bounds(sample.height, sample.width, sample.transform)
    scene = box(min(left, right), min(bottom, top), max(left, right), max(bottom, top))
    if any(v.intersects(scene) for v in vessels):
        return
    extent = tuple(round(float(v), 6) for v in shapely.total_bounds(vessels))
    said = f"its crs member's {crs.to_string()}" if crs is not None else "no crs member, so the scene's CRS"
    raise ValueError(
        f"{path}: the truth lies outside the scene: truth extent {extent} (read in {said}), scene extent "
        f"{tuple(round(v, 6) for v in scene.bounds)} in {sample.crs.to_string() if sample.crs else 'pixels'}. "
        "RFC 7946 GeoJSON is lon/lat (EPSG:4326); if the file is, say so with a top-level crs member, "
        '{"type": "name", "properties": {"name": "EPSG:4326"}}, and the truth is reprojected to the scene')


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
