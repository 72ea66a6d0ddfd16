"""`train_elsewhere.py train --budget-s S` refuses a projected overrun as a command-line error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts")]

import train_elsewhere  # noqa: E402


def test_budget_refusal_is_an_error_line_with_the_budget_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/search.md: `train --budget-s S` refuses what it projects to take longer than S. It did, as
    a traceback (exit 1), naming the budget rounded to whole seconds ("over --budget-s 0" for 0.05)."""
    monkeypatch.setattr(train_elsewhere, "_load_pack", lambda folder: ({}, None, None))
    monkeypatch.setattr(train_elsewhere, "projected_seconds", lambda *a: 2.0)
    code = train_elsewhere.main(["train", "--pack", str(tmp_path / "pack"), "--seeds", "0", "--fp32-epochs", "20",
                                 "--aligned-epochs", "1", "--out", str(tmp_path / "t"), "--budget-s", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "--budget-s 0.5" in err, err
    assert not (tmp_path / "t").exists()
