"""``[data] val_twins``: a training sample that is a shifted or cropped copy of a validation sample
leaves training (validation chooses the candidate, the threshold and the cuts, so a validation chip
whose scene was trained on rewards memory); validation and test never change; off, split.json is what
it was before the setting; a search with records made without it is told how to resume
(:mod:`search.dataset`). Off by default (search/defaults.toml says why)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import search.twins as twins
from search.dataset import VAL_TWINS_CACHE, prepare_data
from tests.search.test_shifted_twins_split_review26 import _names, _save, _scene, told_to_turn_it_off


def _sources(tmp_path: Path) -> list[str]:
    """Three data sets, wholly test, train and val: validation ``va_scene`` is a crop of one scene
    whose other crop, ``tr_twin`` (origin (40, 30) in va_scene's pixels, restretched), is in training;
    every other chip is a scene of its own."""
    scene = _scene(11, (220, 260))
    _save(tmp_path / "test", "t_other", _scene(12, (150, 190)))
    _save(tmp_path / "train", "tr_twin", 255 * (np.clip(scene[40:200, 30:230], 0, 255) / 255) ** 0.8)
    _save(tmp_path / "train", "tr_other", _scene(13, (150, 170)))
    _save(tmp_path / "val", "va_scene", scene[0:160, 0:200])
    return [f"hrsid-mini:{tmp_path / part}" for part in ("test", "train", "val")]


def _cfg(tiny_cfg: dict[str, Any], sources: list[str], val_twins: bool) -> dict[str, Any]:
    tiny_cfg["data"].update(source=sources, source_roles=["test", "train", "val"], shifted_twins=True,
                            val_twins=val_twins)
    return tiny_cfg


def test_the_default_is_off_so_existing_searches_resume() -> None:
    from search.config import load_config

    # on: models/sar's search (out/sar9, configs/sar.toml) would split again and refuse to resume
    assert load_config(None)["data"]["val_twins"] is False


def test_a_shifted_crop_of_a_validation_sample_leaves_training_and_is_recorded(tmp_path: Path,
                                                                              tiny_cfg: dict[str, Any]) -> None:
    root = tmp_path / "out" / "data"
    data = prepare_data(_cfg(tiny_cfg, _sources(tmp_path), True), root)
    split = json.loads((root / "split.json").read_text())
    assert _names(split, "test") == ["t_other"] and _names(split, "val") == ["va_scene"]
    assert _names(split, "train") == ["tr_other"]
    assert [split["names"][str(i)].split("/")[-1] for i in data.train_seeds] == ["tr_other"]
    assert split["dropped"].keys() == {"val_twins"}  # no test twin here
    (record,) = split["dropped"]["val_twins"]
    assert record["from"] == "train" and record["name"].endswith("tr_twin")
    assert record["twin_of"] == [split["names"][str(split["val"][0])]] and record["offset"] == [40, 30]
    assert record["ncc_texture"] >= twins.THRESHOLD
    assert (root / VAL_TWINS_CACHE).is_file()
    with np.load(root / "train.npz") as f:
        assert [int(s) for s in f["seeds"]] == split["train"]


def test_off_the_twin_stays_in_training(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    root = tmp_path / "out" / "data"
    prepare_data(_cfg(tiny_cfg, _sources(tmp_path), False), root)
    split = json.loads((root / "split.json").read_text())
    assert sorted(_names(split, "train")) == ["tr_other", "tr_twin"] and "dropped" not in split
    assert not (root / VAL_TWINS_CACHE).exists()


def test_a_search_with_records_made_without_the_rule_is_told_to_turn_it_off(tmp_path: Path,
                                                                             tiny_cfg: dict[str, Any]) -> None:
    sources = _sources(tmp_path)
    off = copy.deepcopy(_cfg(tiny_cfg, sources, False))
    told_to_turn_it_off(tmp_path / "out", off, _cfg(tiny_cfg, sources, True), r"\[data\] val_twins = false")


def test_a_training_set_of_twins_only_is_refused_naming_the_drop(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    sources = _sources(tmp_path)
    (tmp_path / "train" / "images" / "tr_other.jpg").unlink()
    (tmp_path / "train" / "masks" / "tr_other.png").unlink()
    with pytest.raises(ValueError, match=r"leave no training sample once the samples that could leak are dropped "
                                         r"\(\{'val_twins': 1\}\)"):
        prepare_data(_cfg(tiny_cfg, sources, True), tmp_path / "out" / "data")
