"""Every non-numeric runtime setting is type-checked when it is loaded (reviewer's defect 6): a
quoted boolean is not taken as true, a string of channels is not split into characters, and a bare
number where a string is needed is refused naming the setting, not a TypeError later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.config import defaults, merge_into
from runtime.settings import KINDS, Settings, check_kind


def _settings(table: str, key: str, value: Any) -> Settings:
    """Settings from runtime/defaults.toml with ``[table] key = value``."""
    config = defaults()
    merge_into(config, {table: {key: value}}, "test")
    return Settings.from_config(config)


@pytest.mark.parametrize(("table", "key", "value", "message"), [
    ("models", "strict_fit", "false",
     r"\[models\] strict_fit must be a boolean, true or false \(unquoted\); got 'false'"),
    ("models", "strict_fit", 1, r"\[models\] strict_fit must be a boolean"),
    ("delivery", "ground_ack", "no", r"\[delivery\] ground_ack must be a boolean"),
    ("security", "curve_channels", "control,tiles", r"\[security\] curve_channels must be a list of strings"),
    ("security", "curve_channels", ["control", 5], r"\[security\] curve_channels must be a list of strings"),
    ("endpoints", "tiles", 5550, r"\[endpoints\] tiles must be a string \(quoted\); got 5550"),
    ("inference", "device", 5, r"\[inference\] device must be a string"),
    ("inference", "profile", 0, r"\[inference\] profile must be a string"),
    ("inference", "cpu_precision", 32, r"\[inference\] cpu_precision must be a string"),
    ("models", "store", False, r"\[models\] store must be a string"),
    ("security", "uplink_public_key", 1, r"\[security\] uplink_public_key must be a string"),
    ("health", "watchdog_file", 1, r"\[health\] watchdog_file must be a string"),
    ("device_recovery", "fallback_device", 0, r"\[device_recovery\] fallback_device must be a string"),
])
def test_a_setting_of_the_wrong_type_is_refused_by_name(table: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _settings(table, key, value)


def test_right_types_load_as_before() -> None:
    settings = _settings("security", "curve_channels", ["control", "tiles"])
    assert settings.curve_channels == ("control", "tiles")
    assert settings.ground_ack is True and settings.strict_fit is False and settings.profile is None
    assert _settings("models", "strict_fit", True).strict_fit is True


def test_overrides_are_checked_too() -> None:
    """A command-line override goes through the same check (a tuple of channels is a list)."""
    settings = Settings.from_config(defaults(), curve_channels=("control", "results"))
    assert settings.curve_channels == ("control", "results")
    with pytest.raises(ValueError, match=r"\[delivery\] ground_ack must be a boolean"):
        Settings.from_config(defaults(), ground_ack="yes")
    with pytest.raises(ValueError, match=r"\[endpoints\] control must be a string"):
        Settings.from_config(defaults(), control=5552)


def test_every_non_numeric_default_has_a_kind() -> None:
    """KINDS covers every string, boolean and list of the tables Settings reads from
    runtime/defaults.toml ([supervise] and [benchmark] are read by their commands), and each default
    passes its own check."""
    config = defaults()
    for table, values in config.items():
        if table in ("supervise", "benchmark"):
            continue
        for key, value in values.items():
            if isinstance(value, (str, bool, list)):
                assert (table, key) in KINDS, (table, key)
                check_kind(table, key, value)


def test_reviewer_files_are_refused(tmp_path: Path) -> None:
    """The reviewer's files, written here: each is an error naming its setting."""
    (tmp_path / "strbool.toml").write_text('[models]\nstrict_fit = "false"\n[delivery]\nground_ack = "no"\n')
    with pytest.raises(ValueError, match="strict_fit"):
        Settings.from_config(defaults(tmp_path / "strbool.toml"))
