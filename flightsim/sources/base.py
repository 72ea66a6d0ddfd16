"""The common interface of every scene source: a sequence of :class:`Sample`.

A *source* is both what ``hil run --scene`` streams and a data set the search can train on: a
sequence of images, each with its truth (a vessel mask on the image grid and vessel outlines in
map coordinates), its georeference and the units its measurements are in. Every format module in
this package (GeoTIFF, mask folders, COCO, HRSC2016, DOTA, Airbus, synthetic) turns its files into
these samples, so everything downstream (the tiler, the rig, the scorer, training) sees one shape
of data whatever the file format was.

Length: one module because the interface (``Georef``, ``Sample``, ``Source`` and the ``Subset`` and
``Concat`` of sources) and the readers every format shares (``read_image`` and its georeference, palette
and alpha rules, the mask and polygon helpers) are one contract: a format module, the tiler and the
search all read it together, and splitting it would spread one rule over several files.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.enums
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window
from shapely.geometry import Polygon, shape

from runtime.bands import palette_table
from runtime.config import load_defaults
from runtime.gcps import gcp_georeference
from runtime.measure import units_of  # the rig's truth in the units the runtime measures in

DEFAULTS = load_defaults(Path(__file__).parents[1] / "defaults.toml")

#: Units of the measurements of a sample: metres (projected or geographic CRS) or pixels (none).
UNITS = ("m", "px")


@dataclass
class Georef:
    """Georeferencing given by the user (``--gsd``, ``--origin``, ``--crs``), for images that have none
    or to override the parts given of one they have.

    ``gsd`` is metres (map units) per pixel, ``origin`` the map x, y of the upper-left corner of
    each image, ``crs`` anything ``rasterio.crs.CRS.from_user_input`` reads. Each part given wins and
    each part not given keeps what the image (or its data set) says (:meth:`resolve`). A ``gsd``
    without a ``crs``, on an image without one, puts it on a local metric plane (``[sources]
    local_crs``): lengths and areas come out in metres, positions mean nothing on the Earth.
    """

    gsd: float | None = None
    origin: tuple[float, float] | None = None
    crs: str | None = None

    def __post_init__(self) -> None:
        if self.gsd is not None and (not math.isfinite(self.gsd) or self.gsd <= 0):
            raise ValueError(f"gsd must be a positive number of metres per pixel, got {self.gsd!r}")
        if self.crs is not None:
            try:
                CRS.from_user_input(self.crs)
            except Exception as exc:  # rasterio raises CRSError, pyproj others
                raise ValueError(f"crs {self.crs!r} not understood: {exc}") from None

    @property
    def given(self) -> bool:
        return self.gsd is not None or self.origin is not None or self.crs is not None

    def resolve(self, transform: Affine | None, crs: CRS | None,
                gsd: float | None = None) -> tuple[Affine, CRS | None]:
        """The transform and CRS to use for an image whose own are ``transform`` and ``crs``.

        ``gsd`` is the metres per pixel the image's data set states for it where the image itself has
        no georeference (DOTA's ``gsd:`` line, HRSC's ``Img_Resolution``, a kind's default such as
        sen2ships' 10 m). Each part is filled on its own, so that giving one never throws away what is
        known of the others: the gsd is the user's, else the image's own transform's, else ``gsd``, else
        1; the origin the user's, else the own transform's, else (0, 0); the CRS the user's, else the
        image's own, else ``[sources] local_crs`` where a gsd in metres is known (the user's or
        ``gsd``), else none. A CRS given for an image with no transform and no gsd known is a
        ValueError: its pixel size would be a guess. A transform without a CRS is used only with a CRS
        the user gives: on its own its units are unknown. An image with no georeference and nothing
        given stays on the pixel grid (identity transform, no CRS: measurements in pixels).
        """
        if crs is None and self.crs is None:
            transform = None  # a geotransform without a CRS: units unknown, the pixel grid is honest
        if not self.given and gsd is None:
            if crs is not None and transform is not None:
                return transform, crs
            return Affine.identity(), None
        if self.crs is not None and transform is None and self.gsd is None and gsd is None:
            # Else a pixel of 1 map unit, a metre in most CRSs: lengths in "m" that are pixel counts.
            raise ValueError(f"--crs {self.crs} on an image without georeference needs --gsd (its metres, or map "
                             "units, per pixel); without it the image stays on its pixel grid, measured in pixels")
        fallback = gsd if gsd is not None else 1.0
        out = transform if transform is not None else Affine(fallback, 0.0, 0.0, 0.0, -fallback, 0.0)
        if self.gsd is not None:  # a new pixel size; the grid keeps its orientation (south-up, turned)
            k = self.gsd / math.sqrt(abs(out.determinant))
            out = Affine(out.a * k, out.b * k, out.c, out.d * k, out.e * k, out.f)
        if self.origin is not None:
            out = Affine(out.a, out.b, self.origin[0], out.d, out.e, self.origin[1])
        if self.crs is not None:
            return out, CRS.from_user_input(self.crs)
        if crs is not None:
            return out, crs
        metric = self.gsd is not None or gsd is not None
        return out, CRS.from_user_input(DEFAULTS["sources"]["local_crs"]) if metric else None


@dataclass
class Sample:
    """One image of a source, with its truth and georeference.

    ``image`` holds the sensor counts (bands, H, W) as uint8 or uint16; a GeoTIFF sample leaves it
    ``None`` and reads windows from ``path`` on demand (:meth:`read`), so a large scene is never
    held whole. ``mask`` (H, W) uint8 is 1 on vessel pixels and ``vessels`` their outlines in map
    coordinates (the image's ``transform``/``crs``); both are ``None`` when the sample has no truth.
    ``notes`` says what was done to the data on the way in (an alpha band dropped, a georeference
    given by the user), so that a report can state it. ``position_assumed`` is True where the map
    position of the image's upper-left corner is neither its file's nor the user's (``--origin``) but
    the (0, 0) :meth:`Georef.resolve` falls back to: such an image (``--crs EPSG:3857 --gsd 10`` alone)
    is measured in metres, yet where it lies on the Earth is unknown, so that nothing that looks its
    place up (the coastline of ``hil run --land-masks gshhg``) may take (0, 0) for it.
    """

    name: str
    height: int
    width: int
    transform: Affine
    crs: CRS | None
    bands: list[str]
    dtype: str
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    vessels: list[Polygon] | None = None
    path: Path | None = None
    band_index: list[int] | None = None  # bands of ``path`` to read, 0-based (alpha left out)
    notes: list[str] = field(default_factory=list)
    #: Colour table (bands, entries) of a palette image at ``path``: what it holds are indices into it,
    #: and every read looks them up, so windows and whole reads give the same expanded counts.
    palette: np.ndarray | None = None
    position_assumed: bool = False

    @property
    def units(self) -> str:
        return units_of(self.crs)

    @property
    def count(self) -> int:
        return len(self.bands)

    @property
    def has_truth(self) -> bool:
        return self.mask is not None

    def read(self, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Counts (bands, h, w) of ``window`` = (row, col, height, width), or of the whole image."""
        row, col, h, w = window if window is not None else (0, 0, self.height, self.width)
        if self.image is not None:
            return self.image[:, row:row + h, col:col + w]
        if self.path is None:
            raise ValueError(f"sample {self.name!r} has neither pixels nor a file")
        with _open(self.path) as src:
            if self.palette is not None:
                return self.palette[:, src.read(1, window=Window(col, row, w, h))]
            indexes = [i + 1 for i in self.band_index] if self.band_index else None
            return src.read(indexes, window=Window(col, row, w, h))

    def no_data(self) -> np.ndarray | None:
        """(H, W), True where the sample's file marks no image (its nodata value, an alpha band, a mask):
        what runtime infer keeps vessels off, and hil's scoring too. None where the file marks none
        (every pixel valid), or the sample has no file of its own size (synthetic, or pixels in memory)."""
        if self.path is None:
            return None
        with _open(self.path) as src:
            if (src.height, src.width) != (self.height, self.width):
                return None
            if all(flags == [rasterio.enums.MaskFlags.all_valid] for flags in src.mask_flag_enums):
                return None
            missing = src.dataset_mask() == 0
        return missing if missing.any() else None

    def load(self) -> Sample:
        """This sample with its pixels in memory (training wants arrays)."""
        if self.image is None:
            self.image = self.read()
        return self

    def preview(self, max_side_px: int) -> tuple[np.ndarray, int]:
        """An RGB float picture in [0, 1] at most ``max_side_px`` on a side, and its decimation factor.

        The picture covers the whole scene, corner to corner: its ``height // factor`` x ``width // factor``
        pixels (at least one a side) are each the mean of an equal share of the scene (to within one
        scene pixel in memory), whether read from the file or from memory, so that a drawing stretches
        it over (0, width) x (0, height) and the scene's outlines land on what they outline (not every
        ``factor``-th pixel, which showed its content up to ``factor - 1`` pixels off)."""
        factor = max(1, int(math.ceil(max(self.height, self.width) / max_side_px)))
        if self.image is None and self.path is not None and self.palette is None:
            with _open(self.path) as src:
                from rasterio.enums import Resampling

                indexes = [i + 1 for i in self.band_index] if self.band_index else None
                # At least one pixel a side: a strip far longer than wide would decimate to nothing.
                out_shape = (self.count, max(1, self.height // factor), max(1, self.width // factor))
                img = src.read(indexes, out_shape=out_shape, resampling=Resampling.average).astype(np.float32)
        else:
            img = block_means(self.read(), (max(1, self.height // factor), max(1, self.width // factor)))
        img = img[:3] if img.shape[0] >= 3 else np.repeat(img[:1], 3, axis=0)
        lo, hi = np.percentile(img, (1, 99.5))
        return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1).transpose(1, 2, 0), factor


#: Values (of all bands) of the scene :func:`block_means` reduces at a time: each is cast to float64 (8 bytes)
#: by ``np.add.reduceat`` before it is summed, so a strip costs 4 MB, and its sums and means as much again.
BLOCK_MEANS_STRIP_VALUES = 1 << 19


def block_means(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(bands, H, W) -> (bands, h, w) float32: each output pixel the mean of its block of ``img``.

    The blocks tile the whole image, their edges at ``i * H // h`` (and ``j * W // w``), so a side that
    is no multiple of the output's still maps corner to corner (blocks differ by at most one pixel),
    the same geometry as rasterio's average read to that shape.

    Each block's rows are summed in float64 straight from the counts (uint16 sums cannot overflow),
    divided by their number, and those row means summed and divided along the columns. That is done
    strip by strip of output rows, and a strip of few tall blocks (one output row of a whole scene) by
    columns too, of at most :data:`BLOCK_MEANS_STRIP_VALUES` pixel values: ``np.add.reduceat`` casts
    all of its input to float64 first, and over the whole image that was 8 bytes a value (9.6 GB for a
    20000 x 20000 x 3 uint8 scene, for a picture of a few hundred pixels). Every output value is the same
    sum of the same values in the same order as over the whole image (each one's reduction runs along
    its own block alone), so the picture is the same to the bit; the extra memory is the output and a
    strip.

    Raises:
        ValueError: for an ``img`` that is not (bands, H, W), or an ``out_hw`` with a side under 1 or
            over the image's (a block would be empty: its mean 0 / 0).
    """
    if img.ndim != 3:
        raise ValueError(f"block_means: an image is (bands, H, W); got shape {img.shape}")
    bands, height, width = img.shape
    h, w = (int(n) for n in out_hw)
    if not (1 <= h <= height and 1 <= w <= width):
        raise ValueError(f"block_means: out_hw {tuple(out_hw)} for an image of {height} x {width}; valid: "
                         f"1 <= h <= {height} and 1 <= w <= {width}")
    row_edges = (np.arange(h + 1) * height) // h
    col_edges = (np.arange(w + 1) * width) // w
    row_counts, col_counts = np.diff(row_edges), np.diff(col_edges).reshape(1, 1, w)
    out = np.empty((bands, h, w), np.float32)
    budget = BLOCK_MEANS_STRIP_VALUES
    fits = budget // (bands * width)  # scene rows a strip of the whole width holds
    i = 0
    while i < h:
        # As many whole output rows as fit the budget with the whole width, at least one.
        j = max(i + 1, int(np.searchsorted(row_edges, row_edges[i] + fits, side="right")) - 1)
        r0, r1 = int(row_edges[i]), int(row_edges[j])
        starts = row_edges[i:j] - r0
        means = np.empty((bands, j - i, width), np.float64)
        step = max(1, budget // (bands * (r1 - r0)))  # columns a chunk: all of them where the strip fits
        for c0 in range(0, width, step):
            c1 = min(width, c0 + step)
            sums = np.add.reduceat(img[:, r0:r1, c0:c1], starts, axis=1, dtype=np.float64)
            np.divide(sums, row_counts[i:j].reshape(1, j - i, 1), out=means[:, :, c0:c1])
            del sums  # before the next chunk's, not beside it
        sums = np.add.reduceat(means, col_edges[:-1], axis=2, dtype=np.float64)
        del means
        out[:, i:j] = np.divide(sums, col_counts, out=sums)  # float64 -> float32 as astype rounds
        del sums
        i = j
    return out


class Source(Sequence[Sample]):
    """A sequence of samples, loaded one at a time on access.

    Subclasses set ``name`` and implement ``__len__`` and :meth:`_load`. ``georef`` applies to images
    without a georeference of their own, and overrides the parts it gives of one they have.
    """

    #: The format's name, as ``--scene KIND:PATH`` spells it.
    kind: str = ""

    def __init__(self, root: str | Path, georef: Georef | None = None, limit: int | None = None):
        self.root = Path(root)
        if not self.root.exists():
            raise ValueError(f"{self.root}: no such file or directory")
        self.georef = georef or Georef()
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive number of samples, got {limit}")
        self.limit = limit
        self.skipped: list[str] = []  # files seen and left out, with why

    def _limited(self, n: int) -> int:
        return n if self.limit is None else min(n, self.limit)

    def __len__(self) -> int:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} of a source of {len(self)}")
        return self._load(index % len(self))

    def _load(self, index: int) -> Sample:  # pragma: no cover
        raise NotImplementedError

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self._load(i)

    def describe(self) -> dict[str, Any]:
        """What the report says about this source."""
        return {"source": self.kind, "path": str(self.root), "samples": len(self), "skipped": self.skipped}


# --- Helpers shared by the format modules ----------------------------------------------------------


def _open(path: Path) -> Any:
    """``rasterio.open`` with the not-georeferenced warning silenced (PNG and JPEG have none) and a
    message naming the file when GDAL cannot read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            return rasterio.open(path)
        except RasterioIOError as exc:
            raise ValueError(f"{path}: not a readable image: {exc}") from None


def read_image(path: Path, georef: Georef, name: str | None = None, gsd: float | None = None,
               gsd_from: str = "its data set") -> Sample:
    """An image file (GeoTIFF, PNG, JPEG, BMP: anything GDAL reads) as a sample without truth.

    An alpha band is left out (it is not a measurement) and the note says so. A palette image's
    indices are expanded through its colour table (one grey band, or RGB) and the note says so. Pixels
    must be uint8 or uint16 counts, what a payload sends. The georeference is :meth:`Georef.resolve`'s:
    ``gsd`` (metres per pixel stated by the image's data set, ``gsd_from`` saying where, for the note)
    fills in where neither the user nor the file's own geotransform gives one. A file georeferenced
    only by ground control points has the affine transform they fit as its own
    (:func:`runtime.gcps.gcp_georeference`; where none fits within a pixel, the pixel grid, and the note
    says why).
    """
    if not path.is_file():  # a folder exists: "no such" would send the user looking for a missing path
        raise ValueError(f"{path}: {'a folder, not an image file' if path.is_dir() else 'no such image file'}")
    with _open(path) as src:
        # Every band: a VRT stacking files may mix types, and rasterio's read then fails without the file's name.
        if len(set(src.dtypes)) > 1:
            raise ValueError(f"{path}: bands of mixed types {list(src.dtypes)}; a payload sends one type of counts, "
                             "uint8 or uint16, in every band")
        if src.dtypes[0] not in ("uint8", "uint16"):
            raise ValueError(f"{path}: pixels are {src.dtypes[0]}; a payload sends uint8 or uint16 counts")
        orientation = src.tags().get("EXIF_Orientation", "1").strip() or "1"
        if orientation != "1":  # GDAL reads the stored grid; annotation tools draw on the turned one
            raise ValueError(f"{path}: EXIF orientation {orientation}: viewers and annotation tools show this image "
                             "turned or mirrored, GDAL reads it as stored, so its truth would not lie on its "
                             "pixels; write the image upright (e.g. PIL ImageOps.exif_transpose) without the tag")
        interp = [ci.name for ci in src.colorinterp]
        keep = [i for i, ci in enumerate(interp) if ci != "alpha"]
        notes = []
        if len(keep) < src.count:
            notes.append(f"alpha band dropped ({src.count} bands in the file, {len(keep)} used)")
        names = [src.descriptions[i] or (interp[i] if interp[i] not in ("undefined", "gray") else f"band{i + 1}")
                 for i in keep]
        # GCPs alone (a Sentinel-1 GRD GeoTIFF): the affine transform they fit, or the pixel grid with a
        # note saying why; GDAL reports such a file without a CRS, and it was read as a pixel grid without a word
        try:
            fitted = gcp_georeference(src, path)
        except ValueError as exc:  # none fits: the pixel grid, said in the report (as runtime infer says it)
            fitted = None
            notes.append(f"its ground control points were not used ({exc}): pixel grid")
        own_crs = src.crs if fitted is None else fitted.crs
        # GDAL reports the identity for a file without a geotransform (PNG, JPEG): that is no transform.
        # One without a CRS still goes to resolve, which keeps it when the user gives the CRS.
        own_transform = src.transform if own_crs is not None or not src.transform.is_identity else None
        if fitted is not None:
            own_transform = fitted.transform
            notes.append(fitted.note)
        transform, crs = georef.resolve(own_transform, own_crs, gsd)
        kept_own = own_transform is not None and (own_crs is not None or georef.crs is not None)
        # the upper-left corner is where the file or the user puts it, else resolve's (0, 0): no known place
        assumed = georef.origin is None and not kept_own
        if georef.given:
            notes.append(f"georeference given by the user: transform {tuple(transform)[:6]}, crs {crs}"
                         + ("; no --origin: its place on the Earth is unknown (origin 0, 0 assumed)"
                            if assumed and crs is not None else ""))
        if gsd is not None and georef.gsd is None and not kept_own:
            notes.append(f"gsd {gsd} m from {gsd_from}")
        elif crs is None and not georef.given:
            notes.append("no georeference: pixel grid, measurements in pixels")
        palette = None
        if interp[0] == "palette":
            palette, names, note = palette_table(src)
            keep = [0]
            notes.append(note)
        image = src.read([i + 1 for i in keep]) if path.suffix.lower() not in (".tif", ".tiff") else None
        if palette is not None and image is not None:
            image = palette[:, image[0]]  # the palette stays: hil drops the pixels and reads them again
        return Sample(name=name or path.stem, height=src.height, width=src.width, transform=transform, crs=crs,
                      bands=names, dtype="uint8" if interp[0] == "palette" else src.dtypes[0], image=image,
                      path=path, band_index=keep if len(keep) < src.count and interp[0] != "palette" else None,
                      notes=notes, palette=palette, position_assumed=assumed)


def read_mask_file(path: Path, channel: int, threshold: int, shape_hw: tuple[int, int]) -> np.ndarray:
    """A binary mask from band ``channel`` (0-based) of an image file: ``band > threshold``.

    A palette (indexed-colour) mask is expanded through its colour table first, as :func:`read_image`
    expands a palette image: a layout's rule is about colours ("green > 127"), and the indices a palette
    file stores are not colours (index 2 may be red, index 1 green), so read raw they marked the wrong
    pixels as ships, or refused a green channel that the colours have.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such mask file")
    with _open(path) as src:
        palette = palette_table(src)[0] if src.colorinterp[0].name == "palette" else None
        count = src.count if palette is None else palette.shape[0]
        if channel >= count:
            kind = "bands" if palette is None else "bands once its palette is expanded"
            raise ValueError(f"{path}: mask has {count} {kind}; channel {channel} (0-based) does not exist")
        if (src.height, src.width) != shape_hw:
            raise ValueError(f"{path}: mask is {src.height}x{src.width}, image is {shape_hw[0]}x{shape_hw[1]}")
        band = src.read(channel + 1) if palette is None else palette[channel][src.read(1)]
        return (band > threshold).astype(np.uint8)


def mask_to_vessels(mask: np.ndarray, transform: Affine, labels: np.ndarray | None = None) -> list[Polygon]:
    """Outlines of the vessels of a mask: one polygon per connected component (8-connected), or per
    instance label where ``labels`` (int, 0 = background) is given."""
    if not mask.any():
        return []
    source = labels.astype(np.int32) if labels is not None else mask.astype(np.uint8)
    pieces = rasterio.features.shapes(source, mask=mask.astype(bool), connectivity=8, transform=transform)
    if labels is None:
        return [shape(g) for g, _ in pieces]
    # One instance may come out in several pieces; join them so that an instance is one vessel.
    by_label: dict[int, list[Polygon]] = {}
    for g, v in pieces:
        by_label.setdefault(int(v), []).append(shape(g))
    return [shapely.union_all(parts) for parts in by_label.values()]


def areal_part(geom: Any) -> Any | None:
    """``geom`` made valid and reduced to its areal part (one Polygon or MultiPolygon), or None when
    nothing with an area is left. A self-intersecting outline (a "bowtie") makes GEOS refuse
    overlays; make_valid keeps each lobe's area, and the lines or points it may leave cover nothing."""
    if geom.is_valid and geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    fixed = shapely.make_valid(geom)
    parts = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type in ("Polygon", "MultiPolygon") and g.area > 0]
    return shapely.union_all(parts) if parts else None


def vessels_to_mask(vessels: list[Polygon], transform: Affine, shape_hw: tuple[int, int]) -> np.ndarray:
    """The truth mask of polygons in map coordinates: pixels whose centre lies inside one."""
    if not vessels:
        return np.zeros(shape_hw, np.uint8)
    return rasterio.features.rasterize([(v, 1) for v in vessels], out_shape=shape_hw, transform=transform,
                                       fill=0, dtype="uint8")


def pixel_polygon_to_map(poly: Polygon, transform: Affine) -> Polygon:
    """A polygon in pixel (col, row) coordinates carried to map coordinates by ``transform``."""
    from shapely.affinity import affine_transform

    return affine_transform(poly, [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f])


def with_truth_from_pixels(sample: Sample, pixel_polys: list[Polygon], mask: np.ndarray | None = None) -> Sample:
    """Attach truth given as pixel-coordinate polygons (and optionally a mask that wins over them)."""
    vessels = [pixel_polygon_to_map(p, sample.transform) for p in pixel_polys]
    sample.vessels = vessels
    shape_hw = (sample.height, sample.width)
    sample.mask = mask if mask is not None else vessels_to_mask(vessels, sample.transform, shape_hw)
    return sample


class Subset(Source):
    """The samples of ``source`` at ``indices``, in that order: a split of a data set (the search's
    validation samples, say) that hil runs and scores like any other source."""

    def __init__(self, source: Source, indices: Sequence[int], role: str = "subset"):
        bad = [i for i in indices if not 0 <= int(i) < len(source)]
        if bad:
            where = source.describe().get("path") or source.kind  # a synthetic source has no path
            raise ValueError(f"sample indices {bad} are outside 0..{len(source) - 1} of {where}")
        # Not Source.__init__: the source was checked when it was opened, and a synthetic one has no
        # root to check (its root is None).
        self.root, self.georef, self.limit = source.root, source.georef, None
        self.skipped = source.skipped
        self.source, self.indices, self.role = source, [int(i) for i in indices], role
        self.kind = source.kind

    def __len__(self) -> int:
        return len(self.indices)

    def _load(self, index: int) -> Sample:
        return self.source[self.indices[index]]

    def describe(self) -> dict[str, Any]:
        return self.source.describe() | {"samples": len(self), self.role: self.indices}


class Concat(Source):
    """Several sources one after the other (ssdd chips, then hrsid tiles, say): sample ``i`` of
    part ``k`` is sample ``offset(k) + i`` here.

    Each sample's name is prefixed with its part's :attr:`prefixes` entry so that names (and so tile
    ids) stay unique across parts: the part's kind (``coco/000633``, the form split files record), and
    where several parts share a kind (two COCO sets whose stems coincide) the kind with the part's
    1-based position in the list (``coco.1/0001``, ``coco.3/0001``)."""

    kind = "concat"

    def __init__(self, parts: Sequence[Source]):
        if not parts:
            raise ValueError("a concatenation needs at least one source")
        # A synthetic part has no folder: the concatenation's root is the first part's that has one.
        super().__init__(next((p.root for p in parts if p.root is not None), Path(".")), parts[0].georef)
        self.parts = list(parts)
        kinds = Counter(p.kind for p in self.parts)
        self.prefixes = [p.kind if kinds[p.kind] == 1 else f"{p.kind}.{k + 1}" for k, p in enumerate(self.parts)]
        self.offsets = [0]
        for part in self.parts:
            self.offsets.append(self.offsets[-1] + len(part))

    def __len__(self) -> int:
        return self.offsets[-1]

    def part_of(self, index: int) -> int:
        """Which part sample ``index`` comes from."""
        for k in range(len(self.parts)):
            if index < self.offsets[k + 1]:
                return k
        raise IndexError(f"sample {index} of a source of {len(self)}")

    def _load(self, index: int) -> Sample:
        k = self.part_of(index)
        sample = self.parts[k][index - self.offsets[k]]
        sample.name = f"{self.prefixes[k]}/{sample.name}"
        return sample

    def describe(self) -> dict[str, Any]:
        return {"source": self.kind, "path": [p.describe().get("path") for p in self.parts],
                "parts": [p.describe() for p in self.parts], "samples": len(self),
                "skipped": [s for p in self.parts for s in p.skipped]}
