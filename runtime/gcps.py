"""A raster georeferenced only by ground control points (GCPs): the affine georeference they fit, or
a refusal naming the file.

GDAL reports such a file (a Sentinel-1 GRD measurement GeoTIFF, a scanned chart registered by hand)
with no CRS and the identity transform, its georeference being the GCPs alone; read as such, its
vessels came out in pixels, ``units: "px"``, without a word. The payload's tiles carry an affine
transform (docs/protocol.md), so the GCPs are used where one affine transform fits them, and not
where none does: a map whose vessels would be placed or measured wrongly by more than a pixel is
worse than no map. ``runtime infer`` (:mod:`runtime.offline`) and the rig's readers
(:func:`flightsim.sources.base.read_image`) both read files through :func:`gcp_georeference`, and
where it refuses the GCPs they read the pixel grid and say why (a warning; the report's note): a
scene that ran before (a wide Sentinel-1 swath, whose GCP grid no affine transform fits) still runs,
in pixels, as it did, but no longer without a word.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from affine import Affine
from rasterio.crs import CRS
from rasterio.transform import from_gcps

#: The most (in pixels) the affine fit may miss any GCP by: within a pixel a vessel's outline is
#: where its pixels say, and its length off by at most a pixel, as on a file with a geotransform.
#: A scene whose GCPs bend more than that (a wide SAR swath in slant geometry) needs a warp, which
#: is a resampling the user should choose, not the reader.
MAX_RESIDUAL_PX = 1.0

#: An affine transform has six unknowns: three GCPs not on one line fix it, and fit it exactly.
MIN_GCPS = 3


class GcpFit(NamedTuple):
    """An affine georeference fitted to a raster's GCPs: its transform and CRS, and ``note``, the
    sentence a report gives of it (how many GCPs, and the worst miss)."""

    transform: Affine
    crs: CRS
    note: str


def gcp_georeference(src: Any, path: str | Path) -> GcpFit | None:
    """The affine transform fitted (least squares, GDAL's) to the GCPs of the open raster ``src``
    and their CRS, for a raster georeferenced only by GCPs; None for one with a geotransform of its
    own, without GCPs, or with GCPs in no CRS (their coordinates say nothing of a map, as a
    geotransform without a CRS says nothing: the pixel grid).

    Raises:
        ValueError: naming ``path``, for fewer than :data:`MIN_GCPS` GCPs, GCPs on one line (no
            transform), or GCPs no affine transform fits within :data:`MAX_RESIDUAL_PX` (the worst
            GCP said), with what to do instead.
    """
    gcps, crs = src.gcps
    if not gcps or crs is None or not src.transform.is_identity:
        return None
    way_out = ("warp it onto a map grid first (gdalwarp -t_srs <a projected CRS> in.tif out.tif), or drop its GCPs "
               "to use its pixel grid (gdal_edit.py -unsetgcp in.tif)")
    if len(gcps) < MIN_GCPS:
        raise ValueError(f"{path}: georeferenced by {len(gcps)} ground control point(s); an affine georeference "
                         f"needs at least {MIN_GCPS} not on one line: {way_out}")
    fit = from_gcps(gcps)
    determinant = fit.determinant
    # GDAL returns a fit for collinear GCPs too, singular (or nearly: the 1e-12 of rounding)
    scale = max(abs(fit.a), abs(fit.b), abs(fit.d), abs(fit.e), 1e-300)
    if not math.isfinite(determinant) or abs(determinant) <= 1e-9 * scale * scale:
        raise ValueError(f"{path}: its {len(gcps)} ground control points lie on one line, so they fix no "
                         f"georeference: {way_out}")
    inverse = ~fit
    worst, where = 0.0, (0.0, 0.0)
    for gcp in gcps:  # each GCP's map point carried back to the grid by the fit, against its own pixel
        col, row = inverse * (gcp.x, gcp.y)
        miss = math.hypot(col - gcp.col, row - gcp.row)
        if miss > worst:
            worst, where = miss, (gcp.col, gcp.row)
    if worst > MAX_RESIDUAL_PX:
        raise ValueError(f"{path}: georeferenced only by {len(gcps)} ground control points, which no affine "
                         f"transform fits within {MAX_RESIDUAL_PX:g} px (the least-squares one misses the one at pixel "
                         f"{where[0]:g}, {where[1]:g} by {worst:.3g} px), so its vessels cannot be placed or "
                         f"measured by one: {way_out}")
    return GcpFit(fit, crs, f"georeference fitted to its {len(gcps)} ground control points ({crs}): "
                            f"an affine transform that misses none by more than {worst:.2g} px")
