"""Final-training settings under ``[final] fp32_epochs = 0`` (no final training) are refused when the
config is loaded: they were silently ignored, so a user's ``[final.train] land_gate`` never flew."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.config import load_config


@pytest.mark.parametrize("toml,says", [
    ("[final]\nfp32_epochs = 0\n[final.train]\nland_gate = 'wide'", r"\[final.train\] land_gate"),
    ("[final.export]\nmin_scores = [0.0, 0.5]", r"\[final.export\] min_scores"),
    ("[final]\naligned_epochs = 2", r"\[final\] aligned_epochs = 2"),
    ("[final]\nover_limit = 'next_genome'", r"\[final\] over_limit"),
])
def test_final_settings_without_a_final_training_are_refused(tmp_path: Path, toml: str, says: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ValueError, match=says + r".*\[final\] fp32_epochs = 0 is no final training"):
        load_config(path)


def test_the_same_settings_with_a_final_training_load(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[final]\nfp32_epochs = 3\naligned_epochs = 1\nover_limit = 'next_genome'\n"
                    "[final.train]\nland_gate = 'wide'\n")
    assert load_config(path)["final"]["train"] == {"land_gate": "wide"}
