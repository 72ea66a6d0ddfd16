"""A resumed study must not mix runs of another genome or config into the one it extends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.test_soak_scripts import load_script

UNET8 = '{"family": "unet", "in_channels": 3, "widths": [8, 16, 24, 32]}'
UNET16 = '{"family": "unet", "in_channels": 3, "widths": [16, 24, 32, 32]}'


class Trained(Exception):
    """Raised by the stand-in trainer: the study went on to train."""


def test_seed_study_refuses_to_extend_a_study_of_another_genome(tmp_path: Path, monkeypatch) -> None:
    ss = load_script("seed_study")
    from search.ablate import parse_genome
    from search.config import load_config

    cfg = load_config(Path("configs/sar.toml"))
    old = parse_genome(UNET8, cfg)
    (tmp_path / "study.json").write_text(json.dumps({
        "config": "configs/sar.toml", "genome": old.to_dict(), "name": str(old),
        "recipe": {"final_budget": None, "discriminator_kind": None}, "runs": [{"seed": 0}]}))
    monkeypatch.setattr(ss, "prepare_data", lambda *a, **k: None)

    def trained(*a, **k):
        raise Trained

    monkeypatch.setattr(ss, "evaluate_candidate", trained)
    with pytest.raises(SystemExit):  # before the fix: Trained, seed 1 of UNET16 joins seed 0 of UNET8
        ss.main(["--config", "configs/sar.toml", "--genome", UNET16, "--seeds", "1", "--out", str(tmp_path)])
    with pytest.raises(Trained):  # the same genome and config still resume
        ss.main(["--config", "configs/sar.toml", "--genome", UNET8, "--seeds", "1", "--out", str(tmp_path)])


def test_training_choices_refuses_to_extend_choices_of_another_genome(tmp_path: Path, monkeypatch) -> None:
    tc = load_script("training_choices")
    from search.ablate import parse_genome
    from search.config import load_config

    cfg = load_config(Path("configs/sar.toml"))
    old = parse_genome(UNET8, cfg)
    (tmp_path / "choices.json").write_text(json.dumps({
        "config": "configs/sar.toml", "genome": old.to_dict(), "seeds": [0],
        "variants": {"as the config (6 epochs)": [{"seed": 0, "f1": 0.5, "vessel_iou": 0.3, "f1_chosen": 0.6}]}}))
    monkeypatch.setattr(tc, "prepare_data", lambda *a, **k: None)

    def trained(*a, **k):
        raise Trained

    monkeypatch.setattr(tc, "run_variant", trained)
    with pytest.raises(SystemExit):  # before the fix: Trained, and the table averages both genomes' seeds
        tc.main(["--config", "configs/sar.toml", "--genome", UNET16, "--seeds", "1", "--out", str(tmp_path),
                 "--variants", "as the config (6 epochs)"])
    with pytest.raises(Trained):
        tc.main(["--config", "configs/sar.toml", "--genome", UNET8, "--seeds", "1", "--out", str(tmp_path),
                 "--variants", "as the config (6 epochs)"])
