"""scripts/paired_bootstrap.py: the pooled F1 it resamples is hil's (hil.score.precision_recall_f1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

import paired_bootstrap  # noqa: E402
from hil.score import precision_recall_f1  # noqa: E402


@pytest.mark.parametrize("tp, n_pred, n_truth", [(0, 0, 0), (0, 3, 0), (0, 0, 4), (2, 3, 4), (5, 5, 5)])
def test_bootstrap_pooled_f1_is_the_rigs_f1(tp: int, n_pred: int, n_truth: int) -> None:
    """Samples with no ship and no detection are an F1 of 1 in hil's reports (nothing there, nothing
    found); the bootstrap's pooled F1 made them 0, so a report of only such samples (or a resample
    drawing only them) read 0.000 beside a report that says 1.0."""
    x = np.array([[tp, n_pred, n_truth]], float)
    assert float(paired_bootstrap.pooled_f1(x)) == pytest.approx(precision_recall_f1(tp, n_pred, n_truth)[2])


def test_bootstrap_prints_the_reports_f1_for_empty_scenes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two reports of open-sea samples, nothing found in either: both F1 1.000, difference 0."""
    rows = [{"name": f"sea/{i}", "true_positives": 0, "n_predicted": 0, "n_truth": 0} for i in range(3)]
    for name in ("a", "b"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"per_scene": rows}))
    assert paired_bootstrap.main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--resamples", "50"]) == 0
    assert capsys.readouterr().out.startswith("F1 1.000 -> 1.000, difference 0.000")
