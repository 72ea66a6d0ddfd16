"""Does a scene suit the serving model? Its modality, ground sample distance and count type against
the model's ``trained_for`` (written by the search into every manifest).

A SAR model fed Sentinel-2 optical tiles, or a 3 m model fed 30 cm tiles, answers with confident
nonsense. The rule lives here, once: the rig (:mod:`hil.fit`) applies it to a scene before
streaming it, and the runtime to each scene it receives (:class:`SceneFit`), where a tile says what
it is: its ``modality`` header field (optional), its metres per pixel from its transform when
its CRS gives them (geographic, projected, or an engineering grid in a unit of length), and its
``dtype``. A model trained on 8-bit amplitude fed 16-bit counts normalises them with 8-bit
statistics and calls much of the scene vessel (docs/models.md, "Which model for which scene"),
without a word from anything else: a float32 model takes any counts.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runtime.crs_memo import PerCrs
from runtime.crs_plane import plane_of
from runtime.protocol import TILE_DTYPES

if TYPE_CHECKING:  # only named in annotations: runtime.bundle checks manifests with this module, without rasterio
    from rasterio.crs import CRS

MODALITIES = ("optical", "sar")
#: A scene within this factor of the trained GSD range still counts as inside it.
GSD_SLACK = 1.5
#: The fields of a manifest's ``trained_for``: ``modality`` and ``gsd_m`` are what every rule needs;
#: ``counts`` (optional) the count types of the training data; ``data`` (optional) where it came
#: from, free text for people, read by nothing here.
TRAINED_FOR_FIELDS = ("counts", "data", "gsd_m", "modality")


def check_trained_for(trained_for: Any) -> dict[str, Any]:
    """``trained_for`` if it has the shape :func:`fit_warnings` reads, else a ValueError naming the
    field and what is valid. The bundle reader calls it (:func:`runtime.bundle.validate_manifest`),
    so that a malformed one is refused when the model is read or uplinked, not on every tile after.

    The shape: an object with ``modality`` (one of :data:`MODALITIES`), ``gsd_m`` (``[lo, hi]``
    metres per pixel, positive and finite, lo <= hi), optionally ``counts`` (a count type of
    :data:`runtime.protocol.TILE_DTYPES`, or a non-empty list of them) and ``data`` (free text).
    """
    shape = (f"an object {{modality: one of {list(MODALITIES)}, gsd_m: [lo, hi] metres per pixel, "
             f"counts (optional): one or a list of {list(TILE_DTYPES)}, data (optional)}}")
    if not isinstance(trained_for, dict):
        raise ValueError(f"trained_for must be {shape}; got {trained_for!r}")
    unknown = sorted(set(trained_for) - set(TRAINED_FOR_FIELDS))
    if unknown:  # a misspelt "counts" would otherwise switch the check off without a word
        raise ValueError(f"trained_for has {unknown}; valid: {list(TRAINED_FOR_FIELDS)}")
    if trained_for.get("modality") not in MODALITIES:
        said = repr(trained_for["modality"]) if "modality" in trained_for else "missing"
        raise ValueError(f"trained_for.modality {said}; valid: {list(MODALITIES)}")
    gsd = trained_for.get("gsd_m")
    if not (isinstance(gsd, list) and len(gsd) == 2
            and all(isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) and g > 0 for g in gsd)
            and gsd[0] <= gsd[1]):
        said = f"got {gsd!r}" if "gsd_m" in trained_for else "it is missing"
        raise ValueError(f"trained_for.gsd_m must be [lo, hi]: two positive finite metres per pixel, lo <= hi; "
                         f"{said}")
    counts = trained_for.get("counts")
    listed = [counts] if isinstance(counts, str) else counts
    if counts is not None and not (isinstance(listed, list) and listed and all(c in TILE_DTYPES for c in listed)):
        raise ValueError(f"trained_for.counts must be one of {list(TILE_DTYPES)} or a non-empty list of them; "
                         f"got {counts!r}")
    return trained_for


def manifest_trained_for(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The manifest's ``trained_for``, with ``counts`` (the count types of the data it was trained
    on) taken from its golden tile's type where the search that made it did not write them yet:
    the golden tile is a sample of that data. None when the manifest does not say."""
    said = manifest.get("trained_for")
    if not said:
        return None
    golden = (manifest.get("golden") or {}).get("dtype")
    return dict(said) if "counts" in said or not golden else {**said, "counts": golden}


def fit_warnings(trained_for: Mapping[str, Any] | None, modality: str | None, gsds_m: Sequence[float],
                 counts: Sequence[str] = ()) -> list[str]:
    """Why the scene does not suit a model trained for ``trained_for`` (empty: it does, or the
    model does not say what it was trained for). ``modality``: the scene's (None: unknown);
    ``gsds_m``: its metres per pixel (none: unknown); ``counts``: the types of its counts, e.g.
    ``["uint16"]`` (none: unknown), against ``trained_for["counts"]`` (a type or a list of them)
    where that is given.

    Raises:
        ValueError: for a modality other than those of :data:`MODALITIES`.
    """
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality {modality!r}; valid: {list(MODALITIES)}")
    if not trained_for:
        return []
    warnings = []
    if modality is not None and modality != trained_for["modality"]:
        warnings.append(f"the scene is {modality}; the model was trained on {trained_for['modality']} imagery")
    lo, hi = trained_for["gsd_m"]
    outside = sorted({round(g, 3) for g in gsds_m if g < lo / GSD_SLACK or g > hi * GSD_SLACK})
    if outside:
        warnings.append(f"ground sample distance {outside} m is outside the {lo}-{hi} m the model was trained on")
    expected = trained_for.get("counts")
    expected = [expected] if isinstance(expected, str) else list(expected or [])
    other = sorted({c for c in counts if c not in expected}) if expected else []
    if other:
        warnings.append(f"the scene's counts are {' and '.join(other)}; the model was trained on "
                        f"{' and '.join(expected)} counts (scale them as its training data was, or use a model "
                        f"trained on such counts)")
    return warnings


def tile_fit_warnings(trained_for: Mapping[str, Any] | None, modality: str | None, transform: Sequence[float] | None,
                      crs: CRS | None, dtype: str | None) -> list[str]:
    """:func:`fit_warnings` for what a tile (or a whole image) says of itself: its modality, its
    metres per pixel where its transform and CRS give them, and the type of its counts."""
    gsd = tile_gsd_m(transform, crs)
    return fit_warnings(trained_for, modality, [] if gsd is None else [gsd], [dtype] if dtype else [])


#: The Earth's mean radius (IUGG), metres: a geographic tile's pixel size in metres to a few parts in
#: a thousand, which is what a check against a model's metres-per-pixel range needs.
EARTH_RADIUS_M = 6_371_008.8


def _mercator_of(crs: CRS) -> tuple[float, float, float] | None:
    """(false northing in metres, semi-major axis in metres, scale on the equator) of a Mercator CRS,
    whose map unit is a ground metre only on the equator (at 54 degrees a Web Mercator unit is 0.59
    ground metres), else None."""
    params = crs.to_dict()
    if params.get("proj") != "merc":
        return None
    k0 = (math.cos(math.radians(float(params["lat_ts"]))) if "lat_ts" in params
          else float(params.get("k", params.get("k_0", 1.0))))
    return float(params.get("y_0", 0.0)), float(params.get("a", 6_378_137.0)), k0


def _unit_of(crs: CRS) -> tuple[float, bool, tuple[float, float, float] | None] | None:
    """(metres per map unit of a projected CRS, False, :func:`_mercator_of` it), (radians per angular
    unit of a geographic one, True, None), (metres per unit of an engineering grid in a unit of
    length, False, None), or None for any other CRS.

    The engineering grid is :func:`runtime.crs_plane.plane_of`'s rule, the one vessels are measured
    by (:func:`runtime.measure.describe`): a scene whose vessels get lengths in metres is also judged
    by its metres per pixel, and one whose CRS is refused (a grid in degrees, a geocentric CRS) is
    not judged here."""
    if crs.is_projected and crs.linear_units_factor:
        return float(crs.linear_units_factor[1]), False, _mercator_of(crs)
    if crs.is_geographic and crs.units_factor and crs.units_factor[1]:
        return float(crs.units_factor[1]), True, None
    metres = plane_of(crs)[1]
    return None if metres is None else (metres, False, None)


#: :func:`_unit_of` of each CRS object a tile brings (runtime.crs_memo: not by its value).
_metres_per_unit = PerCrs(_unit_of)


def tile_gsd_m(transform: Sequence[float] | None, crs: CRS | None) -> float | None:
    """Metres per pixel of a tile (the mean of its two axes), or None when its CRS cannot say. In a
    geographic CRS, on a sphere at the latitude of the tile's origin: a degree of longitude shrinks
    with it (a 10 m Sentinel-2 export in EPSG:4326 is 10 m, not unknown); in a Mercator one (EPSG:3857)
    so does a map metre, and the pixel is its ground metres there (17 map units at 54 degrees are 10 m);
    in an engineering grid (``LOCAL_CS``) in a unit of length, that unit in metres (a 10 ft pixel is
    3.048 m), as its vessels are measured."""
    if transform is None or crs is None:
        return None
    unit = _metres_per_unit(crs)
    if unit is None:
        return None
    a, b, _, d, e, f = transform[:6]
    if not unit[1]:
        gsd = unit[0] * (math.hypot(a, d) + math.hypot(b, e)) / 2
        if unit[2] is None:
            return gsd
        y0, radius, k0 = unit[2]  # Mercator's scale k0 / cos(latitude), on the sphere: within a percent
        # cosh is even: bounded on both sides, or a tile far south (within MAX_TRANSFORM) overflows
        return gsd / (k0 * math.cosh(min(abs(f * unit[0] - y0) / (radius * k0), 700.0)))
    along = EARTH_RADIUS_M * unit[0]  # metres per unit of latitude
    across = along * math.cos(min(abs(f * unit[0]), math.pi / 2))  # ... and of longitude there
    return (math.hypot(a * across, d * along) + math.hypot(b * across, e * along)) / 2


class SceneFit:
    """The runtime's check of each tile, and what of it has been said: every tile is judged on what
    it says of itself (scene ids are not unique, docs/protocol.md, so two files of another resolution
    or count type can share one, and a tile must not take another's verdict; the check is a few
    arithmetic operations). What is remembered (bounded, oldest forgotten first) is which findings
    have been reported for which (model, scene), so that a scene raises one event per finding, not
    one per tile."""

    def __init__(self, remember: int = 1024):
        self._said: OrderedDict[tuple[str, Any, tuple[str, ...]], None] = OrderedDict()
        self._remember = remember

    def check(self, model_id: str, trained_for: Mapping[str, Any] | None, header: Mapping[str, Any],
              crs: CRS | None) -> tuple[list[str], bool]:
        """(the tile's warnings, whether they are new for its scene: to be reported). No warnings
        are never new. A tile's ``modality`` that is not one of :data:`MODALITIES` raises
        ValueError (the runtime rejects the tile as a bad header)."""
        warnings = tile_fit_warnings(trained_for, header.get("modality"), header.get("transform"), crs,
                                     header.get("dtype"))
        if not warnings:
            return warnings, False
        key = (model_id, header.get("scene_id"), tuple(warnings))
        new = key not in self._said
        self._said[key] = None
        self._said.move_to_end(key)
        while len(self._said) > self._remember:
            self._said.popitem(last=False)
        return warnings, new


__all__ = ["GSD_SLACK", "MODALITIES", "SceneFit", "fit_warnings", "manifest_trained_for", "tile_fit_warnings", "tile_gsd_m"]
