"""scripts/ablation_study.py: its scores, and its summary of a study under other profiles than the defaults."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

import ablation_study  # noqa: E402
from search.data import Normalization, SceneArrays  # noqa: E402


def test_scores_pool_every_pixel_and_average_each_sample() -> None:
    """``scores`` built its pooled figure as ``Confusion(c.tp, c.fp, ...)``, attributes a Confusion does
    not have (it holds the rig's counts): every run of the study died with an AttributeError once its
    branches had trained."""
    image = np.zeros((1, 64, 64), np.uint8)
    ship = np.zeros((64, 64), np.uint8)
    ship[10:20, 10:20] = 1
    everything = lambda x: np.full((1, 1, *x.shape[2:]), 0.9, np.float32)  # noqa: E731: every pixel a vessel
    test = [("ssdd/a", SceneArrays(0, image, ship)), ("hrsid/b", SceneArrays(1, image, np.zeros_like(ship)))]
    got = ablation_study.scores(everything, test, Normalization(mean=[0.0], std=[1.0]), 64, 0.5)
    # a: 100 of 4096 pixels are vessel, all called vessel; b: none are, all called vessel
    assert got["vessel_iou"] == pytest.approx(100 / 8192) and got["miou"] == pytest.approx(100 / 8192 / 2)
    assert got["vessel_iou_mean"] == pytest.approx((100 / 4096 + 0) / 2)
    assert got["by_set"]["ssdd"]["vessel_iou"] == pytest.approx(100 / 4096)
    assert got["by_set"]["hrsid"]["vessel_iou"] == 0.0


def _runs(out: Path, profiles: list[str]) -> None:
    s = {"miou": 0.6, "vessel_iou": 0.3, "miou_mean": 0.7, "vessel_iou_mean": 0.3, "by_set": {}}
    rows = [{"key": f"native/split0/seed{i}", "network": "native", "split_seed": 0, "seed": i,
             "fp32": s, "post_training": dict.fromkeys(profiles, s), "aligned": dict.fromkeys(profiles, s)}
            for i in range(2)]
    out.mkdir()
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_summary_only_of_a_study_under_one_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--summary-only`` ("the table again") summarised the default --profiles, not those the runs were
    scored under: a KeyError for a study run with ``--profiles fp16-myriadx``."""
    _runs(tmp_path / "study", ["fp16-myriadx"])
    assert ablation_study.main(["--out", str(tmp_path / "study"), "--summary-only"]) == 0
    table = capsys.readouterr().out
    assert "| native | fp16-myriadx | miou | 0.6000 ± 0.0000" in table and "(n=2)" in table
    assert "native-interp" not in table


def test_a_profile_the_finished_runs_lack_is_refused_before_training(
        tmp_path: Path, tiny_config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Resuming with a profile added (as the FP16-accumulation hypothesis was, mid-study) skipped the
    finished runs (their key has no profile) and then died summarising them; now refused up front."""
    _runs(tmp_path / "study", ["fp16-myriadx"])
    with pytest.raises(SystemExit) as stop:
        ablation_study.main(["--out", str(tmp_path / "study"), "--config", str(tiny_config_path), "--networks",
                             "native", "--split-seeds", "0", "--seeds", "0", "1",
                             "--profiles", "fp16-myriadx", "myriadx-fp16-accumulate"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "myriadx-fp16-accumulate" in err
    assert "profiles every run has: ['fp16-myriadx']" in err


def test_a_single_run_has_no_bootstrap_interval() -> None:
    """One run's value was given a 95% bootstrap interval [x, x]: a spread of zero, which reads as
    certainty where one run says nothing about the spread (its sd is None for the same reason). The
    fraction recovered often has one run left once the gaps under the noise are dropped."""
    rng = np.random.default_rng(0)
    assert ablation_study._bootstrap(np.array([0.47]), rng) is None
    assert ablation_study._bootstrap(np.array([]), rng) is None
    low, high = ablation_study._bootstrap(np.array([0.0, 1.0]), rng)
    assert 0.0 <= low < high <= 1.0  # two runs: a real interval, over the means of the resamples
    cell = {"mean": 0.47, "sd": None, "ci95": None, "n": 1}
    row = ablation_study.markdown({"native/fp16-myriadx/miou": dict.fromkeys(
        ("fp32", "post_training", "aligned", "aligned_minus_post", "recovered"), cell)})
    assert "0.4700 (n=1)" in row and "[0.4700, 0.4700]" not in row
