"""Which CRSs give a plane of lengths: the rule for an engineering (local) CRS, once.

An engineering CRS (``LOCAL_CS``, a site's own grid) in a unit of length is a plane in that unit,
so vessels in it are measured in metres (:func:`runtime.measure.describe`) and a scene in it has a
ground sample distance in metres (:func:`runtime.fit.tile_gsd_m`). Both ask :data:`plane_of`, so
that a grid measured in metres is also judged by the model-fit check, and one refused as no length
(degrees, an unknown unit) is neither measured nor judged. A geocentric or vertical CRS has no
plane a 2-D image lies in and is refused.

Imports no rasterio (it only calls methods of the CRS it is given): :mod:`runtime.fit`, which uses
it, is read by :mod:`runtime.bundle` where rasterio may be absent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.crs_memo import PerCrs

if TYPE_CHECKING:  # only named in annotations
    from rasterio.crs import CRS

#: Names of angular units a ``LOCAL_CS`` may be written with (GDAL keeps them as they are, PROJ
#: even calls them lengths), and "unknown": none of them a length a vessel can be measured in.
_NOT_LENGTHS = ("degree", "grad", "gon", "radian", "arc", "unknown")


def engineering_or_refusal(crs: CRS) -> tuple[str | None, float | None]:
    """(None, metres per unit) for an engineering CRS in a unit of length, (None, None) for a
    geographic or projected one (measure and fit have their own ways to metres for them), else
    (why a 2-D image cannot be measured in ``crs``, None)."""
    if crs.is_geographic or crs.is_projected:
        return None, None
    wkt = crs.to_wkt()  # WKT1 (GDAL's): its first keyword says the kind of CRS
    if wkt.startswith("GEOCCS["):
        return ("a geocentric CRS (X, Y, Z from the Earth's centre) has no plane a 2-D image lies in; "
                "georeference the image in a projected (e.g. UTM) or geographic CRS"), None
    if not wkt.startswith("LOCAL_CS["):
        return (f"a {wkt.split('[', 1)[0]} CRS is neither geographic, projected nor an engineering grid, "
                "so it gives no plane of lengths"), None
    name, factor = crs.units_factor
    if any(word in name.lower() for word in _NOT_LENGTHS) or not factor or factor <= 0:
        return f"an engineering CRS whose unit ({name}) is not a length", None
    return None, float(factor)


#: :func:`engineering_or_refusal` of each CRS object (runtime.crs_memo: a stream's tiles share one,
#: and the runtime asks of every tile, :func:`runtime.on_the_earth.check_on_the_earth`).
plane_of = PerCrs(engineering_or_refusal)

__all__ = ["engineering_or_refusal", "plane_of"]
