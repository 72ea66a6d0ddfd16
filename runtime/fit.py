"""Does a scene suit the serving model? Its modality and ground sample distance against the model's
``trained_for`` (written by the search into every manifest).

A SAR model fed Sentinel-2 optical tiles, or a 3 m model fed 30 cm tiles, answers with confident
nonsense. The rule lives here, once: the rig (:mod:`hil.fit`) applies it to a scene before
streaming it, and the runtime to each scene it receives (:class:`SceneFit`), where a tile says what
it is: its ``modality`` header field (optional), and its metres per pixel from its transform when
its CRS is projected in metres.
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


def fit_warnings(trained_for: Mapping[str, Any] | None, modality: str | None, gsds_m: Sequence[float]) -> list[str]:
    """Why the scene does not suit a model trained for ``trained_for`` (empty: it does, or the
    model does not say what it was trained for). ``modality``: the scene's (None: unknown);
    ``gsds_m``: its metres per pixel (none: unknown).

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
    return warnings


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
        gsd = tile_gsd_m(header.get("transform"), crs)
        warnings = fit_warnings(trained_for, modality, [] if gsd is None else [gsd])
        self._seen[key] = warnings
        self._seen.move_to_end(key)
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return warnings, known is None


__all__ = ["GSD_SLACK", "MODALITIES", "SceneFit", "fit_warnings", "tile_gsd_m"]
