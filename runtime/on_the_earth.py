"""Where a tile may lie: a tile in a geographic CRS must have its corners on the Earth, and a tile's
CRS must give a plane its vessels can be measured in (not a geocentric one: runtime.measure).

One check for every path that takes tiles: the serving runtime refuses such a tile (bad_header),
and ``runtime infer`` refuses such a scene before inferring it, as the runtime would its tiles.
"""

from __future__ import annotations

from typing import Any

from rasterio.crs import CRS

from runtime.protocol import Reason, TileRejected
from runtime.measure import lonlat_degrees, plane_refusal

#: Bounds on a geographic tile's corners, in degrees. Latitude beyond ±90 is not on the Earth;
#: longitude beyond ±180 is refused too: a tile written in 0-360 longitudes is unusual, and beyond
#: about ±265 PROJ refuses to measure it (each vessel is measured in a transverse Mercator on its own
#: meridian, runtime/vectorize.py).
MAX_LATITUDE, MAX_LONGITUDE = 90.0, 180.0


def check_on_the_earth(header: dict[str, Any], crs: CRS | None) -> None:
    """Refuse a tile in a geographic CRS whose corners are not on the Earth (bad_header).

    Why here and not in post-processing: there it failed only for tiles holding a vessel (an empty
    tile needs no measuring), so the same tile was ok or inference_failed depending on its content.
    Vessel polygons lie inside the tile's pixel rectangle, and the transform is affine, so its four
    corners bound every coordinate a result can hold.

    A tile in a CRS no vessel can be measured in (:func:`runtime.measure.plane_refusal`: a geocentric
    one, EPSG:4978; a vertical one; an engineering grid in degrees) is refused too, for the same reason:
    it was measured as a pixel grid and reported ``units: "px"``, which its coordinates are not.
    """
    refusal = plane_refusal(crs)
    if refusal is not None:
        raise TileRejected(Reason.BAD_HEADER, f"crs {crs}: {refusal}", header)
    if crs is None or not crs.is_geographic:
        return
    _, height, width = header["shape"]
    a, b, c, d, e, f = (float(t) for t in header.get("transform", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)))
    corners = [(a * col + b * row + c, d * col + e * row + f) for col in (0, width) for row in (0, height)]
    try:  # in WGS 84 degrees from Greenwich, whatever the CRS's units and prime meridian
        lons, lats = lonlat_degrees(crs, [x for x, _ in corners], [y for _, y in corners])  # x is longitude
    except ValueError as exc:
        raise TileRejected(Reason.BAD_HEADER, f"a geographic tile not on the Earth: {exc}", header) from None
    if max(abs(v) for v in lats) > MAX_LATITUDE:
        raise TileRejected(Reason.BAD_HEADER, f"a geographic tile ({crs}) whose corners reach latitude "
                           f"{min(lats):g} to {max(lats):g}: latitude must be within ±{MAX_LATITUDE:g}", header)
    if max(abs(v) for v in lons) > MAX_LONGITUDE:
        raise TileRejected(Reason.BAD_HEADER, f"a geographic tile ({crs}) whose corners reach longitude "
                           f"{min(lons):g} to {max(lons):g}: longitude must be within ±{MAX_LONGITUDE:g}", header)
