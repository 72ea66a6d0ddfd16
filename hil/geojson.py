"""detections.geojson: the detected vessels of a run as one file GIS tools place where they belong.

A GeoJSON file has one CRS, and a reader that finds none takes the coordinates for WGS 84 degrees
(RFC 7946). A run may hold samples in several CRSs (a list of data sets, scenes from two UTM
zones): their vessels are written in lon/lat (OGC:CRS84) where every sample is on the Earth, and
each feature names the CRS its sample is in (``properties.crs``; None for a pixel grid) so that a
file no single CRS can describe (pixel grids or the local plane of ``--gsd`` beside georeferenced
scenes) says so feature by feature instead of putting every vessel in the Gulf of Guinea.
"""

from __future__ import annotations

from typing import Any

from hil.coastline import on_the_earth

#: the name GDAL and QGIS read as WGS 84 longitude, latitude (RFC 7946's own CRS)
CRS84 = "urn:ogc:def:crs:OGC:1.3:CRS84"


def detections_collection(detections: list[dict[str, Any]], crs_of: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The FeatureCollection of ``detections`` (each with ``properties.scene``, in its sample's CRS)
    and how its coordinates are to be read: ``"shared"`` (every sample's own CRS, the same one or
    none), ``"crs84"`` (reprojected to lon/lat) or ``"per-feature"`` (each in its sample's CRS, the
    file naming none). ``crs_of`` maps each sample's name to its CRS (a rasterio CRS or None). The
    features given are not changed."""
    crss = list(crs_of.values())
    first = crss[0] if crss else None
    features = [{**f, "properties": {**f["properties"], "crs": _name(crs_of[f["properties"]["scene"]])}}
                for f in detections]
    if all((c is None) == (first is None) and (c is None or c == first) for c in crss):
        return _collection(_name(first), _right_hand(features)), "shared"
    if all(on_the_earth(c) for c in crss):
        from rasterio.warp import transform_geom

        for f in features:
            f["geometry"] = transform_geom(crs_of[f["properties"]["scene"]], "OGC:CRS84", f["geometry"])
        return _collection(CRS84, _right_hand(features)), "crs84"
    return _collection(None, _right_hand(features)), "per-feature"


def _right_hand(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``features`` with their rings as RFC 7946 wants them (exterior counterclockwise, holes
    clockwise, in the coordinates written): the runtime's merge of border pieces (a GEOS union)
    gives clockwise exteriors, which renderers of spherical GeoJSON (d3) read as the rest of the Earth."""
    from shapely.geometry import MultiPolygon, Polygon, mapping, shape
    from shapely.geometry.polygon import orient

    def oriented(geom: Any) -> Any:
        # polygon.orient, not shapely.orient_polygons: that is shapely 2.1's, and pyproject takes 2.0
        if isinstance(geom, Polygon):
            return orient(geom, 1.0)
        return MultiPolygon([orient(p, 1.0) for p in geom.geoms]) if isinstance(geom, MultiPolygon) else geom

    return [{**f, "geometry": mapping(oriented(shape(f["geometry"])))} for f in features]


def _name(crs: Any) -> str | None:
    return None if crs is None else crs.to_string()


def _collection(crs_name: str | None, features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": crs_name}} if crs_name else None,
            "features": features}


def own_geometry(feature: dict[str, Any], collection: dict[str, Any]) -> Any:
    """A feature of a collection :func:`detections_collection` wrote, as a shapely geometry in its
    sample's own CRS (where its truth is): reprojected back from lon/lat where the file was."""
    from shapely.geometry import shape

    crs = collection.get("crs") or {}
    own = feature["properties"].get("crs")
    if crs.get("properties", {}).get("name") == CRS84 and own is not None:
        from rasterio.warp import transform_geom

        return shape(transform_geom("OGC:CRS84", own, feature["geometry"]))
    return shape(feature["geometry"])
