"""What a resumed search reads of its folder: records of its own version only (a resume onto another
kind of torch device is said), and never a CUDA device the host lacks.

Each refusal comes before any data is prepared or any candidate trained (no ``OUT/data``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from search.config import load_config
from search.evolution import run_search
from search.final import final_training
from search.state import CandidateStore


def _record(key: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "name": f"nas-{key}", "status": "ok", "fitness": 0.5, **fields}


def test_a_record_of_another_version_is_refused_naming_both(tmp_path: Path) -> None:
    store = CandidateStore(tmp_path)
    store.put(_record("abc", version=1))
    assert store.get("abc")["version"] == 1  # type: ignore[index]
    store.put(_record("old", version=0))
    with pytest.raises(ValueError, match=r"old\.json is a record of version 0.*reads version 1 only.*--out"):
        store.get("old")
    with pytest.raises(ValueError, match=r"version 0.*version 1"):
        store.all()


def test_a_final_record_of_another_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "record.json").write_text(json.dumps(_record("k", version=2)))
    best = _record("k", bundle="b", training={"trained_under": "fp32"})
    cfg = load_config()
    cfg["final"].update(fp32_epochs=2, aligned_epochs=1)
    with pytest.raises(ValueError, match=r"record\.json is a record of version 2.*reads version 1 only"):
        final_training(best, cfg, None, tmp_path, lambda _: None)  # type: ignore[arg-type]


def test_a_search_resumed_over_a_record_of_another_version_trains_nothing(tmp_path: Path,
                                                                          tiny_cfg: dict[str, Any]) -> None:
    CandidateStore(tmp_path).put(_record("old", version=7))
    with pytest.raises(ValueError, match=r"version 7.*version 1"):
        run_search(tiny_cfg, tmp_path, progress=False)
    assert not (tmp_path / "data").exists()


def test_a_search_trained_on_another_kind_of_torch_device_is_resumed_with_a_warning(
        tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """A search begun with torch_device "auto" on a lent GPU machine and resumed on the CPU (or the
    other way) is how a search spanning sessions finishes: allowed, with a warning that its
    candidates' fitness ranks two numerics (CUDA convolutions run in TF32)."""
    from search.evolution import _training_device

    other = "cpu" if torch.cuda.is_available() else "cuda:0"
    store = CandidateStore(tmp_path)
    store.put(_record("same", version=1, training={"torch_device": "cuda:0" if other == "cpu" else "cpu"}))
    assert _training_device(tiny_cfg, store) is None
    store.put(_record("gpu", version=1, training={"torch_device": other}))
    said = _training_device(tiny_cfg, store)
    assert said is not None and f"trained on ['{other}']" in said and "TF32" in said


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a CUDA device")
def test_a_cuda_device_the_host_lacks_is_refused_before_any_candidate_fails_on_it(
        tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """Each candidate failed on it, and its persisted ``failed`` record kept the genome from ever
    being trained on resume."""
    tiny_cfg["candidate"]["torch_device"] = "cuda"
    with pytest.raises(ValueError,
                       match=r"\[candidate\] torch device 'cuda': this host has no such CUDA device.*valid here"):
        run_search(tiny_cfg, tmp_path, progress=False)
    assert not (tmp_path / "data").exists() and not list((tmp_path / "records").glob("*.json"))
