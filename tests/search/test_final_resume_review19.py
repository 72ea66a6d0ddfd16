"""The final training on resume: its record outlives a comparison that fails, and a network for which
no second stage can be fitted loses the comparison instead of ending the search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.evolution import initial_population, search_space
from tests.conftest import make_brightness_bundle

HRSID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hrsid-mini"


@pytest.mark.slow
def test_a_final_training_is_kept_when_its_comparison_fails(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """The final record was written only after the comparison: a comparison that raised (here its
    second stage has no split to be fitted on) lost the final training, and the rerun trained it again."""
    from search.candidate import evaluate_candidate
    from search.dataset import prepare_data
    from search.final import final_training

    cfg = tiny_cfg
    cfg["final"].update(fp32_epochs=1, aligned_epochs=1)
    data = prepare_data(cfg, tmp_path / "data")
    genome = initial_population(search_space(cfg), 1, 0)[0]
    best = evaluate_candidate(genome, cfg, data, tmp_path)
    assert best["status"] == "ok", best.get("reason")
    staged = {**cfg, "export": {**cfg["export"], "discriminate": True}}
    (tmp_path / "data" / "split.json").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="split"):
        final_training(best, staged, data, tmp_path, lambda *_: None)
    path = tmp_path / "final" / "record.json"
    assert path.exists(), "the final training was lost with the comparison"
    trained = json.loads(path.read_text())
    assert trained["key"] == genome.key and trained["final_budget"] == {"fp32_epochs": 1, "aligned_epochs": 1}
    said: list[str] = []
    final_training(best, cfg, data, tmp_path, said.append)  # resumed without the second stage: judged, not trained
    assert not any("epochs" in line for line in said), said
    assert any("judged again" in line for line in said)
    assert json.loads(path.read_text())["seconds"] == trained["seconds"]  # the same training


@pytest.mark.skipif(not HRSID.is_dir(), reason="../shared/data/hrsid-mini is not beside the project")
@pytest.mark.slow
def test_a_final_network_without_a_second_stage_loses_and_the_search_goes_on(tmp_path: Path) -> None:
    """With [export] discriminate, a final network that finds no ship cannot be given a second stage:
    the comparison raised ("candidates of both kinds"), ending the search after its final training,
    and every rerun the same way. Now that network loses, and the searched candidate flies."""
    from search.config import load_config
    from search.final import BY_SECOND_STAGE, _compared_as_configured, final_config, final_training

    split = {"source": [f"hrsid-mini:{HRSID}"], "train": [0, 1], "val": [3], "test": [10**6]}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "split.json").write_text(json.dumps(split))
    make_brightness_bundle(tmp_path / "searched", size=64, threshold=0.3)
    make_brightness_bundle(tmp_path / "final", size=64, threshold=0.9999)  # above sigmoid(5): never a detection
    cfg = load_config()
    cfg["export"]["discriminate"] = True
    metrics = {"device": "myriadx-emu"}
    searched = {"key": "s", "name": "nas-s", "bundle": str(tmp_path / "searched"), "fitness": 0.5,
                "device_metrics": metrics, "training": {"trained_under": "fp32"}}
    stale = {"key": "s", "name": "nas-s", "bundle": str(tmp_path / "final"), "fitness": 0.6, "status": "ok",
             "device_metrics": metrics, "final_budget": final_config(cfg)[1],
             "compared": {"by": "validation fitness", "searched": 0.5, "final": 0.6}}
    (tmp_path / "final" / "record.json").write_text(json.dumps(stale))
    said: list[str] = []
    assert final_training(searched, cfg, None, tmp_path, said.append) is searched  # type: ignore[arg-type]
    compared = json.loads((tmp_path / "final" / "record.json").read_text())["compared"]
    assert compared["by"] == BY_SECOND_STAGE and compared["final"] is None and "final" in compared["unfitted"]
    assert isinstance(compared["searched"], float) and np.isfinite(compared["searched"])
    assert _compared_as_configured(compared, cfg)  # a rerun judges nothing again ...
    cfg["export"]["discriminate"] = False
    assert not _compared_as_configured(compared, cfg)  # ... unless the second stage is off since
