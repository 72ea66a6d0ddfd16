"""scripts/ship_model.py: the test figures it writes into a shipped manifest name the device they were
measured on, as the rig reports it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from runtime.bundle import read_bundle
from tests.runtime.test_soak_scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_test_figures_name_the_device_the_rig_measured_not_the_word_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--device flight`` is resolved by the rig (the stick, an NPU or the twin): the manifest said
    ``device: flight`` and "on flight" beside figures measured on, say, the twin, and did not name the
    profile (the twin's numerics) at all."""
    ship = load_script("ship_model")
    shutil.copytree(ROOT / "models" / "sar", tmp_path / "search" / "flight_model")

    def measured(bundle: Path, split: Path, out: Path, device: str, part: str = "test") -> dict[str, Any]:
        assert device == "flight"  # what was asked: the rig resolves it
        return {"f1": 0.8, "precision": 0.8, "recall": 0.8, "vessel_iou": 0.3, "outline_vessel_iou": 0.5,
                "miou": 0.6, "tiles_lost": 0, "by_set": {}, "bundle_sha256": read_bundle(bundle).id,
                "device": "myriadx-emu", "profile": "fp16-myriadx"}

    monkeypatch.setattr(ship, "test_scores", measured)
    assert ship.main(["--search", str(tmp_path / "search"), "--config", str(ROOT / "configs" / "sar.toml"),
                      "--out", str(tmp_path / "shipped"), "--device", "flight"]) == 0
    test = json.loads((tmp_path / "shipped" / "manifest.json").read_text())["metrics"]["test"]
    assert (test["device"], test["profile"]) == ("myriadx-emu", "fp16-myriadx")  # before the fix: "flight", none
    assert "on myriadx-emu" in test["measured_on"] and "flight" not in test["measured_on"]
