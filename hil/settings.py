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
from runtime.config import check_number, load_defaults

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")


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
        if not isinstance(t["report_dir"], str) or not t["report_dir"]:  # Path(3) is a TypeError: a traceback
            raise ValueError(f"[run] report_dir must be a folder path, e.g. 'out/hil'; got {t['report_dir']!r}")
        return cls(
            device=t["device"],
            report_dir=Path(t["report_dir"]),
            window=check_number("[run] window", t["window"], 1, integer=True),
            resend_after_s=check_number("[run] resend_after_s (0: never)", t["resend_after_s"], 0),
            rate_hz=check_number("[run] rate_hz (0: as fast as acknowledged)", t["rate_hz"], 0),
            startup_timeout_s=check_number("[run] startup_timeout_s", t["startup_timeout_s"], 0, strict=True),
            result_timeout_s=check_number("[run] result_timeout_s", t["result_timeout_s"], 0, strict=True),
            duplicate_grace_s=check_number("[run] duplicate_grace_s", t["duplicate_grace_s"], 0),
            synthetic_seed=check_number("[run] synthetic_seed", t["synthetic_seed"], 0, integer=True),
            overlap_px=check_number("[run] overlap_px", t["overlap_px"], 0, integer=True),
            timing=t["timing"],
        )


@dataclass(frozen=True)
class ScoreSettings:
    """``[score]``: how detections are matched to the truth and border pieces joined."""

    match_iou: float
    merge_tolerance_px: float
    border_rule: str
    match_shape: str

    @classmethod
    def from_table(cls, t: dict[str, Any]) -> ScoreSettings:
        from runtime.merge import BORDER_RULES

        if t["border_rule"] not in BORDER_RULES:
            raise ValueError(f"[score] border_rule {t['border_rule']!r}; valid: {list(BORDER_RULES)}")
        tolerance = check_number("[score] merge_tolerance_px", t["merge_tolerance_px"], 0)
        if tolerance >= 0.5:  # runtime.merge._share_edge: a shared edge of one pixel then reads as a corner
            raise ValueError(f"[score] merge_tolerance_px must be a number in [0, 0.5); got {tolerance!r}: from 0.5 "
                             "a one-pixel-wide vessel across a border with 4-connectivity comes down in two")
        from hil.score import check_match_shape

        return cls(match_iou=check_number("[score] match_iou", t["match_iou"], 0, strict=True, high=1),
                   merge_tolerance_px=tolerance,
                   border_rule=str(t["border_rule"]), match_shape=check_match_shape(t["match_shape"]))


@dataclass(frozen=True)
class OverviewSettings:
    """``[overview]``: the report's picture."""

    max_side_px: int
    max_panels: int

    @classmethod
    def from_table(cls, t: dict[str, Any]) -> OverviewSettings:
        return cls(max_side_px=check_number("[overview] max_side_px", t["max_side_px"], 1, integer=True),
                   max_panels=check_number("[overview] max_panels", t["max_panels"], 1, integer=True))


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
