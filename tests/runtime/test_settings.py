"""The runtime's settings: defaults.toml typed once, overrides applied once, then read-only."""

from __future__ import annotations

import dataclasses

import pytest

from runtime import config
from runtime.settings import Settings


def test_settings_come_from_the_config_and_overrides_then_cannot_change() -> None:
    cfg = config.defaults()
    settings = Settings.from_config(cfg, device="CPU", tiles="ipc:///tmp/x", watchdog_file="/tmp/w", profile=None)
    assert settings.device == "CPU" and settings.endpoints["tiles"] == "ipc:///tmp/x"
    assert settings.health["watchdog_file"] == "/tmp/w" and settings.ground_ack is cfg["delivery"]["ground_ack"]
    assert settings.max_tiles_inside == cfg["limits"]["max_tiles_inside"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.device = "MYRIAD"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.health["period_s"] = 0  # type: ignore[index]


def test_an_unknown_override_is_an_error_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown setting 'devise'; valid: \[.*'device'"):
        Settings.from_config(config.defaults(), devise="CPU")
