"""Land masks for georeferenced scenes from a maintained coastline data set, on the ground.

SSDD's chips come with hand-drawn sea/land masks; a new scene does not. For a scene with a
georeference, ``roaring-landmask`` (the land mask OpenDrift uses: GSHHG's full-resolution
shorelines, or OpenStreetMap's coastline: a 15 arc-second bitmap whose land cells are checked
against the shoreline polygons, so a point near the shore is placed by the polygons) says for each
pixel whether it is on land. It runs on the ground, not on
board: its data is a 100 MB wheel and the payload keeps light dependencies; the payload's own
answer to land is the network's land gate (``[train] land_gate``, docs/models.md).

``roaring-landmask`` is optional (``pip install .[coastline]``) and imported only when used.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

#: Coastline data sets of roaring-landmask, by the name ``hil run --land-masks`` takes.
COASTLINES = ("gshhg", "osm")

#: Largest number of pixel centres looked up per image; a larger image is looked up at the centres
#: of step x step blocks (each filled back to full size from its centre): a land point costs
#: microseconds (its polygon check), so a 10k x 10k scene stays seconds.
MAX_LOOKUPS = 1_000_000


def check_coastline(coastline: str) -> None:
    """Refuse ``coastline`` when it is not one of :data:`COASTLINES` or roaring-landmask is not
    installed, without the seconds of loading its mask: ``hil run`` asks before streaming a tile."""
    import importlib.util

    if coastline not in COASTLINES:
        raise ValueError(f"coastline {coastline!r}; valid: {list(COASTLINES)}")
    if importlib.util.find_spec("roaring_landmask") is None:
        raise ValueError(_MISSING.format(coastline))


#: The error for a coastline asked for without its optional package.
_MISSING = "--land-masks {} needs roaring-landmask: pip install '.[coastline]'"


@functools.lru_cache(maxsize=len(COASTLINES))
def _landmask(coastline: str) -> Any:
    """The roaring-landmask mask of ``coastline`` (its loading takes seconds: once per process)."""
    try:
        from roaring_landmask import LandmaskProvider, RoaringLandmask
    except ImportError as err:  # an optional dependency: say how to get it
        raise ValueError(_MISSING.format(coastline)) from err
    provider = {"gshhg": LandmaskProvider.Gshhg, "osm": LandmaskProvider.Osm}[coastline]
    return RoaringLandmask.new_with_provider(provider)


def coastline_sea_mask(sample: Any, coastline: str) -> np.ndarray | None:
    """The sample's sea mask (True = sea) from ``coastline``, or None for a sample without a CRS
    (a pixel grid or a local metric plane: nowhere on Earth to look up), one whose position is only
    assumed (placed by ``--crs``/``--gsd`` without ``--origin``: :func:`placed_on_the_earth`) or none
    of whose pixels its CRS places on the Earth. A pixel it does not place (beyond a geostationary
    disk's rim) is sea: there is no land there to mask."""
    if coastline not in COASTLINES:
        raise ValueError(f"coastline {coastline!r}; valid: {list(COASTLINES)}")
    if not placed_on_the_earth(sample):  # before the seconds of loading the mask: a chip set may have no CRS at all
        return None
    landmask = _landmask(coastline)
    step = max(1, math.ceil(math.sqrt(sample.height * sample.width / MAX_LOOKUPS)))
    # Each step x step block is looked up at its centre (the last, cut-off block at the centre of
    # what is left of it), so that filling it back places the shore within about step / 2 pixels;
    # at the block's first pixel it would shift the shore by up to step - 1.
    rows = _block_centres(sample.height, step)
    cols = _block_centres(sample.width, step)
    cc, rr = np.meshgrid(cols, rows)
    xs, ys = sample.transform * (cc.ravel(), rr.ravel())
    lon, lat = _lon_lat(sample.crs, np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
    # A point with no place on the Earth (beyond a geostationary disk's rim, or past a pole) has no land
    # to mask: roaring-landmask panics on a latitude past 90 (a PanicException, not an Exception)
    placed = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0)
    # A geographic grid may run past the antimeridian (-182 is Fiji): roaring-landmask reads longitudes
    # past +180 but took those past -180 for the sea.
    lon = np.where(np.isfinite(lon), (lon + 180.0) % 360.0 - 180.0, lon)
    if not placed.any():  # no pixel of it on the Earth: nothing masked, as for a sample without a CRS
        return None
    land = np.zeros(lon.shape, dtype=bool)
    land[placed] = np.asarray(landmask.contains_many(np.ascontiguousarray(lon[placed]),
                                                     np.ascontiguousarray(lat[placed])), dtype=bool)
    sea = ~land.reshape(len(rows), len(cols))
    if step > 1:
        sea = np.repeat(np.repeat(sea, step, axis=0), step, axis=1)[:sample.height, :sample.width]
    return sea


def _lon_lat(crs: Any, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of the map points ``xs, ys`` of ``crs``; NaN for a point PROJ cannot
    place. GDAL refuses the whole call when one point is outside the projection's domain (the corners
    of a geostationary full disk, the far side of an orthographic view), which failed the run at its
    scoring, after every tile: such a call is split in halves until the points it cannot place are
    found (a few calls per run of them, each of some tens of microseconds)."""
    import rasterio.warp
    from rasterio._err import CPLE_BaseError  # what GDAL's errors are raised as (rasterio.errors has no name for it)

    lon = np.full(xs.shape, np.nan)
    lat = np.full(xs.shape, np.nan)
    pending = [(0, len(xs))]
    while pending:
        i, j = pending.pop()
        try:
            lon[i:j], lat[i:j] = rasterio.warp.transform(crs, "EPSG:4326", xs[i:j], ys[i:j])
        except CPLE_BaseError:
            if j - i > 1:
                pending += [(i, (i + j) // 2), ((i + j) // 2, j)]
    return lon, lat


def placed_on_the_earth(sample: Any) -> bool:
    """Whether ``sample`` has a known place on the Earth to look up: a CRS :func:`on_the_earth` and a
    position of its own or the user's ``--origin``, not the (0, 0) an image given only ``--crs`` and
    ``--gsd`` is put at (``Sample.position_assumed``: the Gulf of Guinea in EPSG:3857, open sea in a
    UTM zone), which would be masked as all sea and counted as masked."""
    return on_the_earth(sample.crs) and not getattr(sample, "position_assumed", False)


def on_the_earth(crs: Any) -> bool:
    """Whether a sample's CRS places its pixels on the Earth: not none (a pixel grid), nor an
    engineering CRS (a site's own grid), nor the local metric plane a gsd without a CRS gets
    (``[sources] local_crs``, whose origin is 0 N 0 E: the Gulf of Guinea, all sea, for any image)."""
    if crs is None or not (crs.is_geographic or crs.is_projected):
        # an engineering (local) CRS, as a GeoTIFF may carry: PROJ cannot place it on the Earth, and
        # looking it up failed at the scoring, after the whole run (it is measured in its own unit)
        return False
    from rasterio.crs import CRS

    from flightsim.sources.base import DEFAULTS

    return crs != CRS.from_user_input(DEFAULTS["sources"]["local_crs"])


def _block_centres(n: int, step: int) -> np.ndarray:
    """Pixel coordinates of the centres of the blocks ``[k * step, min((k + 1) * step, n))`` of a
    side of ``n`` pixels (with step 1, the pixel centres ``k + 0.5``)."""
    starts = np.arange(0, n, step)
    return (starts + np.minimum(starts + step, n)) / 2
