"""search.config: every configuration the repository ships loads, so a misspelt setting in one of
them fails here instead of in a user's two-hour search."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


def test_the_repository_ships_configurations() -> None:
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_each_shipped_configuration_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg["data"] and cfg["train"]


def test_a_misspelt_setting_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nsteps_per_epoc = 10\n")
    with pytest.raises(ValueError, match="unknown setting 'steps_per_epoc'.*steps_per_epoch"):
        load_config(bad)
