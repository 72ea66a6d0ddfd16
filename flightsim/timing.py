"""When the payload has each tile, and when it was imaged: a push-broom timing model.

A push-broom imager reads one line of pixels across the swath every ``1 / line_rate_hz`` seconds
as the satellite moves (line rate = ground speed / gsd). A tile exists once its last line has been
read, so the tiles of one tile row become ready together: a burst. The header's ``time`` is the
acquisition time of the tile's middle line. Several scenes in one stream are imaged one after the
other (their lines stack).

Pacing is separate from timestamps: ``paced=False`` sends as fast as the runtime acknowledges, with
the timestamps still modelled; ``paced=True`` holds each tile until its ready time. A tile-rate
mode (``rate_hz`` with ``burst``) paces by tiles instead of lines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flightsim.tiles import Tile
from runtime.config import check_count, check_number, load_defaults

DEFAULTS = load_defaults(Path(__file__).with_name("defaults.toml"))["timing"]
MODES = ("asap", "rate", "pushbroom")


@dataclass
class Timing:
    """How tiles are timed: ``mode`` one of :data:`MODES`.

    * ``asap``: sent as fast as acknowledged; timestamps from the push-broom model.
    * ``rate``: ``rate_hz`` tiles per second, in bursts of ``burst`` tiles; after a stall of the
      tile source the bursts keep their spacing (``Tile.keeps_pace``) instead of catching up.
    * ``pushbroom``: each tile row when its last line is read at ``line_rate_hz``.
    """

    mode: str = "asap"
    line_rate_hz: float | None = None   # None: ground speed / gsd, or the default for pixel scenes
    rate_hz: float | None = None
    burst: int = int(DEFAULTS["burst"])
    epoch: float | None = None          # acquisition start, Unix seconds (None: now)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown timing mode {self.mode!r}; valid: {list(MODES)}")
        # Finite, not only positive: a NaN line rate passed "<= 0" and stamped every tile's time NaN (its
        # frames then raised mid-stream), an infinite one stamped every tile with the epoch, and an
        # infinite rate_hz sent "rate" tiles unpaced.
        if self.mode == "rate" and self.rate_hz is None:
            raise ValueError(f"timing mode 'rate' needs a positive rate_hz, got {self.rate_hz}")
        if self.rate_hz is not None:
            self.rate_hz = check_number("timing rate_hz", self.rate_hz, 0.0, strict=True)
        if self.line_rate_hz is not None:
            self.line_rate_hz = check_number("timing line_rate_hz", self.line_rate_hz, 0.0, strict=True)
        self.burst = check_count("timing burst (tiles)", self.burst)  # numpy ints too
        if self.epoch is not None:
            self.epoch = check_number("timing epoch (Unix seconds)", self.epoch, -math.inf)

    def line_rate(self, gsd_m: float | None) -> float:
        """Lines per second: as given, else ground speed / gsd, else the default for pixel scenes."""
        if self.line_rate_hz:
            return self.line_rate_hz
        if gsd_m:
            return float(DEFAULTS["ground_speed_m_s"]) / gsd_m
        return float(DEFAULTS["default_line_rate_hz"])

    def apply(self, scenes: Iterable[tuple[Iterable[Tile], int, float | None]]) -> Iterator[Tile]:
        """Stamp ``time`` and ``ready_s`` on the tiles of each (tiles, scene height, gsd) in turn."""
        epoch = time.time() if self.epoch is None else self.epoch
        line0 = 0.0   # seconds of imaging before this scene
        index = 0
        for tiles, height, gsd in scenes:
            rate = self.line_rate(gsd)
            for tile in tiles:
                row, _, h, _ = tile.window
                tile.time = epoch + line0 + (row + h / 2) / rate
                if self.mode == "pushbroom":
                    tile.ready_s = line0 + (row + h) / rate
                elif self.mode == "rate":
                    tile.ready_s = (index // self.burst) * self.burst / self.rate_hz  # type: ignore[operator]
                    tile.keeps_pace = True  # a stall (a slow tile source) delays the bursts after it
                index += 1
                yield tile
            line0 += height / rate

    def describe(self) -> dict[str, object]:
        return {"mode": self.mode, "line_rate_hz": self.line_rate_hz, "rate_hz": self.rate_hz, "burst": self.burst}
