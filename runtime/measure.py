"""A vessel's measurements: its outline's length, width and heading, in metres where its CRS
allows, and the longitude and latitude of a point (:func:`describe`, :func:`lonlat_degrees`).

The payload measures each outline it reports (:mod:`runtime.vectorize`), and the ground measures
again what it merges from several tiles (:mod:`runtime.merge`, :mod:`hil.merge`), with the same rule.
"""

from __future__ import annotations

import math
from typing import Any

import rasterio.crs
import rasterio.warp
import shapely
from shapely.geometry import mapping, shape

from runtime.crs_memo import PerCrs
from runtime.crs_plane import plane_of


def describe(polygon: shapely.Polygon, crs: rasterio.crs.CRS | None) -> dict[str, Any]:
    """Measure a vessel polygon given in map coordinates of ``crs``.

    Length and width are the long and short sides of the minimum rotated rectangle; heading is the
    bearing of the long side in degrees clockwise from grid north (the +y axis of the measuring
    plane), in [0, 180): a mask cannot tell bow from stern, so 30 and 210 are the same answer.

    Units follow the CRS so that every feature has one schema (keys stay ``area_m2``,
    ``length_m``, ``width_m``) and ``units`` says what they are in:

    * projected CRS: map units converted to metres with the CRS's linear unit factor; ``"m"``.
    * geographic CRS: the polygon is reprojected to a transverse Mercator centred on its centroid
      (scale 1 and grid north = true north there) before measuring; ``"m"``. The centroid stays in
      the CRS's lon/lat.
    * engineering (local) CRS, a site's own grid (``LOCAL_CS``) in a unit of length: its units
      converted to metres with the unit's factor; ``"m"``. Heading is from the grid's +y axis, the
      only north it has. It is not pixels: measuring it as such reported a 3 m grid's lengths a third of
      what they are, and called them ``"px"``.
    * None (no georeferencing): the transform's own units, usually pixels; ``"px"``. Heading is then
      relative to +y of those coordinates, which points down the image for an identity transform.

    Any other CRS is refused (:func:`plane_refusal` says why): a geocentric one (EPSG:4978: X, Y, Z
    from the Earth's centre) has no plane a 2-D image could lie in, and an engineering one in degrees
    or an unknown unit, or a vertical one, has no length to give; the runtime refuses such tiles
    before inferring them (:func:`runtime.on_the_earth.check_on_the_earth`).

    A projected CRS is taken at its word: its plane distances are ground distances, which holds
    to 0.1% in UTM. A Mercator one (EPSG:3857, 3395) is measured as a geographic one: its map metre
    is a ground metre only on the equator (0.59 m at 54 degrees, where its vessels came out 1.7 times
    their length while :func:`runtime.fit.tile_gsd_m` judged the scene by its ground metres).

    A degenerate polygon (a line or a point) gives width 0 (and length 0 for a point).

    Raises:
        ValueError: for a CRS :func:`plane_refusal` refuses, naming it and why.
    """
    centroid = polygon.centroid
    centre = [float(centroid.x), float(centroid.y)] if not centroid.is_empty else [0.0, 0.0]
    if crs is None:
        plane, scale, units = polygon, 1.0, "px"
    elif crs.is_geographic or (crs.is_projected and _is_mercator(crs)):
        # degrees, or a Mercator's map metre (a ground metre only on the equator): measured in a
        # transverse Mercator on the vessel's own meridian; the CRS's units and meridian may differ
        lon, lat = lonlat_degrees(crs, [centre[0]], [centre[1]])
        plane = shape(rasterio.warp.transform_geom(crs, _local_tm_crs(lon[0], lat[0]), mapping(polygon)))
        scale, units = 1.0, "m"
    elif crs.is_projected:
        plane, scale, units = polygon, float(crs.linear_units_factor[1]), "m"
    else:  # an engineering grid in a unit of length; any other CRS is no plane of lengths
        refusal, metres = plane_of(crs)
        if refusal is not None:
            raise ValueError(f"cannot measure a vessel in {crs}: {refusal}")
        plane, scale, units = polygon, float(metres), "m"  # type: ignore[arg-type]

    length, width, heading = _rectangle(plane)
    return {
        "area_m2": float(plane.area * scale * scale),
        "length_m": length * scale,
        "width_m": width * scale,
        "heading_deg": heading,
        "centroid": centre,
        "units": units,
    }


def _rectangle(geom: shapely.Geometry) -> tuple[float, float, float]:
    """(length, width, heading_deg) of the minimum rotated rectangle, without NaN on degenerates."""
    rect = shapely.minimum_rotated_rectangle(geom)
    if isinstance(rect, shapely.Polygon) and not rect.is_empty:
        (x0, y0), (x1, y1), (x2, y2) = list(rect.exterior.coords)[:3]
        sides = [(x1 - x0, y1 - y0), (x2 - x1, y2 - y1)]
    elif isinstance(rect, shapely.LineString) and not rect.is_empty:
        (x0, y0), (x1, y1) = rect.coords[0], rect.coords[-1]
        sides = [(x1 - x0, y1 - y0), (0.0, 0.0)]
    else:  # a point or nothing: no extent, no direction
        return 0.0, 0.0, 0.0
    sides.sort(key=lambda s: math.hypot(*s), reverse=True)
    (dx, dy), short = sides
    # Bearing: atan2(east, north); folded into [0, 180) since the long axis has no sense.
    heading = math.degrees(math.atan2(dx, dy)) % 180.0
    if heading >= 180.0:  # -tiny % 180 rounds up to 180.0
        heading = 0.0
    return float(math.hypot(dx, dy)), float(math.hypot(*short)), float(heading)


def plane_refusal(crs: rasterio.crs.CRS | None) -> str | None:
    """Why vessels cannot be measured in ``crs`` (a geocentric CRS, a vertical one, an engineering
    grid in degrees or an unknown unit), or None where :func:`describe` can (none, geographic,
    projected, an engineering grid in a unit of length)."""
    return None if crs is None else plane_of(crs)[0]


def units_of(crs: rasterio.crs.CRS | None) -> str:
    """The ``units`` :func:`describe` reports for ``crs``: ``"px"`` without one, else ``"m"`` (for a
    CRS :func:`plane_refusal` refuses, ``"px"``: nothing is measured in it)."""
    return "px" if crs is None or plane_refusal(crs) is not None else "m"


_WGS84 = rasterio.crs.CRS.from_epsg(4326)

#: Whether a projected CRS is a Mercator (``+proj=merc``), per CRS object (runtime.crs_memo).
_is_mercator = PerCrs(lambda crs: crs.to_dict().get("proj") == "merc")


def _plain_degrees(crs: rasterio.crs.CRS) -> bool:
    """Whether the geographic ``crs``'s coordinates are WGS 84 degrees from Greenwich, to a
    hundredth of a degree. Raises ValueError for a CRS PROJ cannot relate to WGS 84."""
    probe_x, probe_y = [0.0, 45.0, -120.0], [0.0, 30.0, -60.0]
    try:
        lon, lat = rasterio.warp.transform(crs, _WGS84, probe_x, probe_y)
    except Exception as exc:
        raise ValueError(f"{crs} cannot be related to WGS 84 (a CRS of another body?): {exc}") from None
    return all(abs(a - b) < 1e-2 for a, b in zip([*lon, *lat], [*probe_x, *probe_y]))


#: :func:`_plain_degrees` of each CRS object a tile brings (runtime.crs_memo: not by its value).
_is_plain_degrees = PerCrs(_plain_degrees)


def lonlat_degrees(crs: rasterio.crs.CRS, xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Points of the geographic (or Mercator) ``crs`` as WGS 84 longitudes and latitudes in degrees from Greenwich:
    as they are for the usual CRSs (checked once per CRS), converted for one in other units or from
    another prime meridian (EPSG:4807: grads from Paris).

    Raises:
        ValueError: for a CRS PROJ cannot relate to WGS 84 (one of another body: IAU_2015:49900, Mars).
    """
    if _is_plain_degrees(crs):
        return list(xs), list(ys)
    try:
        lon, lat = rasterio.warp.transform(crs, _WGS84, list(xs), list(ys))
    except Exception as exc:
        raise ValueError(f"points of {crs} not on the Earth: {exc}") from None
    if not all(math.isfinite(v) for v in (*lon, *lat)):
        raise ValueError(f"points of {crs} not on the Earth")
    return list(lon), list(lat)


def _local_tm_crs(lon: float, lat: float) -> rasterio.crs.CRS:
    """A WGS 84 transverse Mercator whose central meridian runs through (lon, lat), scale 1 on it:
    its grid north is true north there and its distances are ground distances to a few parts per
    million over a ship's extent, wherever in a UTM zone (or past the antimeridian, lon > 180) it is.
    A UTM zone's grid north is off true north by up to about 3 degrees at its edges at high latitude."""
    return rasterio.crs.CRS.from_proj4(f"+proj=tmerc +lat_0={lat!r} +lon_0={lon!r} +k=1 +x_0=0 +y_0=0 "
                                       "+datum=WGS84 +units=m +no_defs")
