"""Answers about a CRS remembered per CRS object, for the per-tile checks of the serving process.

Not an ``lru_cache``: that hashes the CRS, and rasterio hashes a CRS by its WKT, which inside the
serving process (where OpenVINO's streams keep the caches cold) cost 0.11 ms of thread CPU per
tile, an eighth of the main loop's (``scripts/host_time.py``). The runtime parses each CRS text
once (``runtime.server._parse_crs``), so a stream's tiles bring the same object, and the object's
``id`` is the key: each entry holds its CRS, so the id cannot be reused while the entry lives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:  # only named in annotations: runtime.fit, which uses this, imports no rasterio
    from rasterio.crs import CRS

Answer = TypeVar("Answer")


class PerCrs(Generic[Answer]):
    """``compute(crs)``, computed once per CRS object and kept for at most ``kept`` objects (a stream
    has one CRS; many means a changing stream, and the memory starts again). What ``compute``
    raises is raised each time, not remembered."""

    def __init__(self, compute: Callable[[CRS], Answer], kept: int = 64):
        self._compute, self._kept = compute, kept
        self._answers: dict[int, tuple[CRS, Answer]] = {}

    def __call__(self, crs: CRS) -> Answer:
        known = self._answers.get(id(crs))
        if known is not None and known[0] is crs:
            return known[1]
        answer = self._compute(crs)
        if len(self._answers) >= self._kept:
            self._answers.clear()
        self._answers[id(crs)] = (crs, answer)
        return answer
