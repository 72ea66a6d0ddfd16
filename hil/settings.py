"""What the rig runs with: hil/defaults.toml (merged with ``--config``) as one typed, frozen object.

Every default lives in defaults.toml; this module gives the settings types and names and checks
their values once, when they are loaded, so that a bad value in a configuration file is refused
with the valid range before a runtime is started or a tile is sent, and no second set of defaults
can drift from the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightsim.timing import MODES
from runtime.config import load_defaults

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")


def _at_least(where: str, value: Any, low: float, *, strict: bool = False) -> float:
    """``value`` as a number if it is >= ``low`` (> with ``strict``), else a ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number; got {value!r}")
    if value < low or (strict and value == low):
        raise ValueError(f"{where} must be {'>' if strict else '>='} {low}; got {value!r}")
    return value


def _whole(where: str, value: Any, low: int) -> int:
    """``value`` if it is an integer >= ``low``, else a ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where} must be a whole number >= {low}; got {value!r}")
    return value


@dataclass(frozen=True)
class RunSettings:
    """``[run]``: how a scene is streamed and how long the rig waits (hil/defaults.toml says what each means)."""

    device: str
    report_dir: Path
    window: int
    resend_after_s: float
    rate_hz: float
    startup_timeout_s: float
    result_timeout_s: float
    duplicate_grace_s: float
    synthetic_seed: int
    overlap_px: int
    timing: str

    @classmethod
    def from_table(cls, t: dict[str, Any]) -> RunSettings:
        if t["timing"] not in MODES:
            raise ValueError(f"[run] timing must be one of {list(MODES)}; got {t['timing']!r}")
        if not isinstance(t["device"], str) or not t["device"]:
            raise ValueError(f"[run] device must be a device name, e.g. 'flight', 'CPU', 'myriadx-emu'; got {t['device']!r}")
        return cls(
            device=t["device"],
            report_dir=Path(t["report_dir"]),
            window=_whole("[run] window", t["window"], 1),
            resend_after_s=float(_at_least("[run] resend_after_s (0: never)", t["resend_after_s"], 0)),
            rate_hz=float(_at_least("[run] rate_hz (0: as fast as acknowledged)", t["rate_hz"], 0)),
            startup_timeout_s=float(_at_least("[run] startup_timeout_s", t["startup_timeout_s"], 0, strict=True)),
            result_timeout_s=float(_at_least("[run] result_timeout_s", t["result_timeout_s"], 0, strict=True)),
            duplicate_grace_s=float(_at_least("[run] duplicate_grace_s", t["duplicate_grace_s"], 0)),
            synthetic_seed=_whole("[run] synthetic_seed", t["synthetic_seed"], 0),
            overlap_px=_whole("[run] overlap_px", t["overlap_px"], 0),
            timing=t["timing"],
        )


@dataclass(frozen=True)
class ScoreSettings:
    """``[score]``: how detections are matched to the truth and border pieces joined."""

    match_iou: float
    merge_tolerance_px: float

    @classmethod
    def from_table(cls, t: dict[str, Any]) -> ScoreSettings:
        match_iou = float(_at_least("[score] match_iou", t["match_iou"], 0, strict=True))
        if match_iou > 1:
            raise ValueError(f"[score] match_iou must lie in (0, 1]; got {match_iou!r}")
        return cls(match_iou=match_iou,
                   merge_tolerance_px=float(_at_least("[score] merge_tolerance_px", t["merge_tolerance_px"], 0)))


@dataclass(frozen=True)
class OverviewSettings:
    """``[overview]``: the report's picture."""

    max_side_px: int
    max_panels: int

    @classmethod
    def from_table(cls, t: dict[str, Any]) -> OverviewSettings:
        return cls(max_side_px=_whole("[overview] max_side_px", t["max_side_px"], 1),
                   max_panels=_whole("[overview] max_panels", t["max_panels"], 1))


@dataclass(frozen=True)
class Settings:
    """The rig's configuration, one frozen object per table of hil/defaults.toml."""

    run: RunSettings
    score: ScoreSettings
    overview: OverviewSettings

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings:
        """``config``: hil/defaults.toml merged with a user TOML (:func:`runtime.config.load_defaults`).

        Raises:
            ValueError: for a value out of its range or not one of its choices, naming the setting.
        """
        return cls(run=RunSettings.from_table(config["run"]), score=ScoreSettings.from_table(config["score"]),
                   overview=OverviewSettings.from_table(config["overview"]))

    @classmethod
    def load(cls, override: Path | None = None) -> Settings:
        """hil/defaults.toml, with ``override`` (``hil run --config``) merged over it and checked.

        Raises:
            ValueError: for a key the defaults do not have, or a value out of its range.
        """
        return cls.from_config(load_defaults(DEFAULTS_PATH, override))


#: The shipped defaults, checked.
DEFAULTS = Settings.load()
