"""`scripts/seed_study.py --final` under a config without a final training is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

import seed_study  # noqa: E402


def test_final_without_a_final_budget_is_refused_before_any_work(
        tmp_path: Path, tiny_config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With [final] fp32_epochs = 0 (the default: no final training) `--final` trained and scored a
    network of 0 FP32 epochs (a candidate needs >= 1: search.config) and reported it as the final
    recipe's figures."""
    with pytest.raises(SystemExit) as stop:
        seed_study.main(["--config", str(tiny_config_path), "--seeds", "0", "--final", "--part", "val",
                         "--out", str(tmp_path / "study")])
    assert stop.value.code == 2 and "[final] fp32_epochs" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()
