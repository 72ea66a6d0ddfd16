"""``runtime infer``: the payload's per-tile processing applied to one file (.npy, GeoTIFF, PNG, JPEG,
...), without sockets.

The same preprocessing, device adapter and vectorisation as the server, so a file run here and the
same pixels streamed to a runtime give the same vessels, merged across tile borders as the rig merges
them; but for two things a ground that holds the whole file can do better: pixels the file marks as no
data (its nodata value, alpha band or mask) hold no vessel, and ``[vectorize] simplify_px`` simplifies
each vessel after the merge, not each tile's piece before it. The file is read a tile at a time.

No data differs from the rig on purpose: here the probabilities of no-data pixels are zeroed before
vectorising, so a vessel partly on no data comes out trimmed to its image part (and a ship beside a
white-filled no-data border stays apart from it); the rig, scoring what a payload sent (a payload sees
only counts), can only drop a vessel whose centre lies on no data and keeps the others' outlines whole.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from shapely.affinity import affine_transform
from shapely.geometry import mapping, shape

from runtime.bands import adapt_bands, model_band_names, palette_table
from runtime.bundle import read_bundle
from runtime.device import open_device
from runtime.fit import manifest_trained_for, tile_fit_warnings
from runtime.gcps import gcp_georeference
from runtime.merge import merge_detections
from runtime.preprocess import Preprocessor
from runtime.on_the_earth import check_on_the_earth
from runtime.protocol import TileRejected
from runtime.measure import describe
from runtime.vectorize import vectorize

log = logging.getLogger(__name__)


class InputImage:
    """A ``.npy`` array ((bands, H, W) or (H, W), memory-mapped) or any raster GDAL reads (GeoTIFF,
    PNG, JPEG, BMP, ...: many chip sets, SSDD among them, come as JPEG), read a tile at a time
    (:meth:`read`), so that a scene of any size costs a tile's memory, with its georeference and each
    band's name: a raster's band description or colour interpretation, else ``band<n>`` (1-based),
    as the rig's readers name them, so :func:`runtime.bands.adapt_bands` picks the same bands here as
    there; a palette image's indices are the colours of its table (:func:`runtime.bands.palette_table`),
    as the rig reads them. A raster without a CRS (PNG and JPEG have none) is a pixel grid, as hil
    reads it; one georeferenced only by ground control points is on the affine transform they fit
    (:func:`runtime.gcps.gcp_georeference`, as hil reads it). An alpha band is left out, as the rig
    leaves it out: it is not a measurement; what it, a nodata value or a mask says is no data is what
    :meth:`read` returns as such.

    Raises:
        ValueError: for a path that is no file, a file neither ``.npy`` nor a raster GDAL reads, an
            image with an EXIF orientation (viewers show it turned; GDAL reads it as stored, as the
            rig refuses it), ground control points no affine transform fits within a pixel, or counts
            that are not uint8 or uint16 in (bands, H, W) or (H, W), before any pixel is read.
    """

    def __init__(self, path: str | Path):
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: {'a folder, not an image file' if path.is_dir() else 'no such file'}")
        suffix = path.suffix.lower()
        self._src: Any = None
        self._array: np.ndarray | None = None
        self._masked = False
        self._palette: np.ndarray | None = None
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            shape, dtype = array.shape, array.dtype
            self.transform, self.crs, names = Affine.identity(), None, None
            self._array = array[None] if array.ndim == 2 else array
        else:
            import rasterio

            self._src = src = _open_raster(path)
            orientation = src.tags().get("EXIF_Orientation", "1").strip() or "1"
            if orientation != "1":  # the vessels would be placed on a grid other than the one viewers show
                self.close()
                raise ValueError(f"{path}: EXIF orientation {orientation}: viewers show this image turned or "
                                 "mirrored, GDAL reads it as stored, so the vessels' pixel coordinates would not "
                                 "be where they are seen; write the image upright (e.g. PIL ImageOps.exif_transpose) "
                                 "without the tag")
            interp = [ci.name for ci in src.colorinterp]
            if len(set(src.dtypes)) > 1:  # a VRT may stack files of other types: rasterio's read then fails
                self.close()
                raise ValueError(f"{path}: bands of mixed types {list(src.dtypes)}; a payload sends one type of "
                                 "counts, uint8 or uint16, in every band")
            self._keep = [i for i, ci in enumerate(interp) if ci != "alpha"] or list(range(src.count))
            shape, dtype = (len(self._keep), src.height, src.width), np.dtype(src.dtypes[0])
            self.transform, self.crs = src.transform, src.crs
            try:  # georeferenced by GCPs alone: their affine fit (runtime.gcps)
                fitted = gcp_georeference(src, path)
            except ValueError as exc:
                # none fits (a wide SAR swath's GCP grid): the pixel grid, said, as the rig reads it; a
                # refusal would turn away a scene that ran before, and its vessels still have pixels
                log.warning("%s; its pixel grid is used: outlines in pixels", exc)
                fitted = None
            if fitted is not None:
                self.transform, self.crs = fitted.transform, fitted.crs
                log.info("%s: %s", path, fitted.note)
            names = [src.descriptions[i] or (interp[i] if interp[i] not in ("undefined", "gray") else f"band{i + 1}")
                     for i in self._keep]
            if interp[0] == "palette" and dtype.name in ("uint8", "uint16"):  # colours, as the rig reads them
                self._palette, names, note = palette_table(src)
                self._keep = [0]
                shape, dtype = (len(names), src.height, src.width), self._palette.dtype
                log.info("%s: %s", path, note)
            # nodata values, an alpha band or a mask: which pixels are not image (all valid: none)
            self._masked = any(flags != [rasterio.enums.MaskFlags.all_valid] for flags in src.mask_flag_enums)
            if self.crs is None:  # a geotransform without a CRS: units unknown; the pixel grid, as hil reads it
                self.transform = Affine.identity()
            if len(self._keep) < len(interp):
                log.info("%s: alpha band dropped (%d bands in the file, %d used)", path, len(interp), len(self._keep))
        if len(shape) not in (2, 3) or dtype.name not in ("uint8", "uint16"):  # the shape as it was given
            self.close()
            raise ValueError(f"{path}: need (bands, H, W) or (H, W) uint8 or uint16 counts, got {shape} {dtype}")
        self.shape: tuple[int, int, int] = (1, *shape) if len(shape) == 2 else tuple(shape)  # type: ignore[assignment]
        self.dtype = dtype
        self.names = names or [f"band{i + 1}" for i in range(self.shape[0])]

    def read(self, index: list[int] | None, row: int, col: int, height: int,
             width: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The counts of bands ``index`` (0-based, of :attr:`names`; None: all) in the window at
        (row, col) of at most height x width pixels (less at the image's bottom and right), and
        where they are no data (True; None where the file marks none)."""
        if self._array is not None:
            counts = self._array[:, row:row + height, col:col + width]
            return np.array(counts if index is None else counts[index]), None
        from rasterio.windows import Window

        window = Window(col, row, min(width, self.shape[2] - col), min(height, self.shape[1] - row))
        if self._palette is not None:
            colours = self._palette[:, self._src.read(1, window=window)]
            counts = colours if index is None else colours[index]
        else:
            bands = [self._keep[i] + 1 for i in (range(self.shape[0]) if index is None else index)]
            counts = self._src.read(bands, window=window)
        return counts, (self._src.dataset_mask(window=window) == 0) if self._masked else None

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def __enter__(self) -> InputImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_raster(path: Path) -> Any:
    """``rasterio.open`` with the not-georeferenced warning silenced (PNG and JPEG have no
    georeference: a pixel grid) and a ValueError naming the file and what is read when GDAL cannot
    read it."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            return rasterio.open(path)
        except RasterioIOError as exc:
            raise ValueError(f"{path}: not a readable image ({exc}); valid: a .npy array or a raster GDAL reads "
                             f"(GeoTIFF, PNG, JPEG, ...)") from None


def infer_file(
    model: str | Path, input_path: str | Path, device: str, vectorize_opts: dict[str, Any], cpu_precision: str = "f32",
    profile: str | None = None,
) -> dict[str, Any]:
    """Segment a whole image tile by tile and return a GeoJSON FeatureCollection of vessels, with
    ``fit``: the reasons the image is not what the model was trained for (:mod:`runtime.fit`: its
    count type, and its metres per pixel where its CRS says them), as the runtime would raise them,
    and ``bands``: how the image's bands were made the model's (``adaptation``, the sentence the
    rig's report gives as ``band_adaptation``).

    The image's bands are adapted to the model's by the rig's rule (:func:`runtime.bands.adapt_bands`:
    as is, by name, or a single band repeated), so a file inferred here and the same file run
    through ``python -m hil run`` feed the model the same bands; a repeat or a pick is logged.
    ``profile``: the twin's target profile, as ``[inference] profile`` gives a serving runtime
    (None: the model's, else the twin's own), so that the file is computed in the payload's numerics.

    Raises:
        ValueError: when no rule makes the image's bands the model's, or the runtime would reject
            its tiles (their count type, or a geographic georeference off the Earth), saying why, as a
            serving runtime's rejection would.
    """
    bundle = read_bundle(model)
    with InputImage(input_path) as image:
        transform, crs = image.transform, image.crs
        model_bands = model_band_names(bundle.manifest["input"])
        try:
            index, adaptation = adapt_bands(image.names, model_bands, option=None)
        except ValueError as exc:
            raise ValueError(f"{input_path}: {exc}") from None
        if index is not None:
            log.info("%s: bands: %s", input_path, adaptation)
        fit = tile_fit_warnings(manifest_trained_for(bundle.manifest), None, tuple(transform)[:6], crs,
                                image.dtype.name)
        # A geographic scene off the Earth: the runtime refuses every tile of it (bad_header); unchecked, it
        # was inferred whole and then failed in PROJ where a vessel was measured, or came back off the Earth.
        # The transform is affine, so the image's corners bound every tile's.
        try:
            check_on_the_earth({"shape": image.shape, "transform": tuple(transform)[:6]}, crs)
        except TileRejected as exc:
            raise ValueError(f"{input_path}: the runtime rejects its tiles: {exc}") from None
        adapter = open_device(bundle, device, lambda out, data: None, infer_requests=1, cpu_precision=cpu_precision,
                              profile=profile)
        prep = Preprocessor(bundle.manifest["input"], adapter.input_shape)
        _, _, th, tw = adapter.input_shape
        _, height, width = image.shape
        discriminator = bundle.discriminator
        features: list[dict[str, Any]] = []
        for row in range(0, height, th):
            for col in range(0, width, tw):
                tile, no_data = image.read(index, row, col, th, tw)
                try:
                    batch, valid = prep(tile, {})
                except TileRejected as exc:  # e.g. uint16 counts for a uint8 model: every tile would be
                    raise ValueError(f"{input_path}: the runtime rejects its tiles: {exc}") from None
                prob = adapter.infer(batch)[0, 0]
                if no_data is not None and no_data.any():  # what the file says is not image holds no vessel
                    prob = prob.copy()
                    prob[:valid[0], :valid[1]][no_data] = 0.0
                features += vectorize(
                    prob, bundle.threshold, transform @ Affine.translation(col, row), crs, valid=valid,
                    min_area_px=bundle.min_area_px if bundle.min_area_px is not None else vectorize_opts["min_area_px"],
                    simplify_px=0.0,  # after the merge, below: simplified pieces may no longer meet, or may overlap
                    connectivity=vectorize_opts["connectivity"], min_score=bundle.min_score,
                    image=tile, discriminator=discriminator,
                    # a piece at an inner tile edge waits for the merge below to be judged by its size
                    borders=(row > 0, col > 0, row + valid[0] < height, col + valid[1] < width),
                )
    # the pixel size from the whole transform: ``a`` alone is 0 on a grid turned by 90 degrees
    merged = merge_detections(features, crs, tolerance=0.01 * math.sqrt(abs(transform.determinant)),
                              connectivity=vectorize_opts["connectivity"])
    if vectorize_opts["simplify_px"] > 0:
        merged = [_simplified(f, transform, crs, vectorize_opts["simplify_px"]) for f in merged]
    return {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs.to_string()}} if crs else None,
        "model": {"name": bundle.name, "sha256": bundle.id},
        "numerics": adapter.numerics,
        "fit": {"warnings": fit},
        "bands": {"adaptation": adaptation},
        "features": merged,
    }


def _simplified(feature: dict[str, Any], transform: Affine, crs: CRS | None, simplify_px: float) -> dict[str, Any]:
    """A merged vessel simplified as the payload simplifies a tile's (Douglas-Peucker, ``simplify_px``
    in pixels, on the outline in pixel coordinates) and measured anew. Done after the merge: pieces
    simplified one by one could leave the border they were cut along (one vessel reported as two)
    or reach into a neighbour a pixel away (two vessels reported as one)."""
    to_px, to_map = ~transform, transform
    geom = shape(feature["geometry"])
    in_px = affine_transform(geom, [to_px.a, to_px.b, to_px.d, to_px.e, to_px.c, to_px.f])
    simple = affine_transform(in_px.simplify(simplify_px, preserve_topology=True),
                              [to_map.a, to_map.b, to_map.d, to_map.e, to_map.c, to_map.f])
    return {**feature, "geometry": mapping(simple), "properties": {**feature["properties"], **describe(simple, crs)}}
