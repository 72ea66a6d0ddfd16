"""Does a scene suit the serving model? Its modality, ground sample distance and count type against
the model's ``trained_for`` (written by the search into every manifest).

A SAR model fed Sentinel-2 optical tiles, or a 3 m model fed 30 cm tiles, answers with confident
nonsense. The rule lives here, once: the rig (:mod:`hil.fit`) applies it to a scene before
streaming it, and the runtime to each scene it receives (:class:`SceneFit`), where a tile says what
it is: its ``modality`` header field (optional), its metres per pixel from its transform when
its CRS is projected in metres, and its ``dtype``. A model trained on 8-bit amplitude fed 16-bit
counts normalises them with 8-bit statistics and calls much of the scene vessel (docs/models.md,
"Which model for which scene"), without a word from anything else: a float32 model takes any
counts.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from rasterio.crs import CRS

MODALITIES = ("optical", "sar")
#: A scene within this factor of the trained GSD range still counts as inside it.
GSD_SLACK = 1.5


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


@functools.lru_cache(maxsize=64)
def _metres_per_unit(crs: CRS) -> float | None:
    """Metres per map unit of a projected CRS; None for a geographic or unknown one."""
    if not crs.is_projected:
        return None
    factor = crs.linear_units_factor
    return float(factor[1]) if factor else None


def tile_gsd_m(transform: Sequence[float] | None, crs: CRS | None) -> float | None:
    """Metres per pixel of a tile (the mean of its two axes), or None when its CRS cannot say."""
    if transform is None or crs is None:
        return None
    unit = _metres_per_unit(crs)
    if unit is None:
        return None
    a, b, _, d, e, _ = transform[:6]
    return unit * (math.hypot(a, d) + math.hypot(b, e)) / 2


class SceneFit:
    """The runtime's check, once per (model, scene): the warnings for the scene's first tile are
    remembered (bounded, oldest forgotten first), so a scene raises one event, not one per tile."""

    def __init__(self, remember: int = 1024):
        self._seen: OrderedDict[tuple[str, Any], list[str]] = OrderedDict()
        self._remember = remember

    def check(self, model_id: str, trained_for: Mapping[str, Any] | None, header: Mapping[str, Any],
              crs: CRS | None) -> tuple[list[str], bool]:
        """(warnings, first time for this scene). A tile's ``modality`` that is not one of
        :data:`MODALITIES` raises ValueError (the runtime rejects the tile as a bad header)."""
        modality = header.get("modality")
        key = (model_id, header.get("scene_id"))
        known = self._seen.get(key)
        if known is not None and modality is None:
            return known, False
        warnings = tile_fit_warnings(trained_for, modality, header.get("transform"), crs, header.get("dtype"))
        self._seen[key] = warnings
        self._seen.move_to_end(key)
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return warnings, known is None


__all__ = ["GSD_SLACK", "MODALITIES", "SceneFit", "fit_warnings", "manifest_trained_for", "tile_fit_warnings", "tile_gsd_m"]
