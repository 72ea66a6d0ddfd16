"""``[data] shifted_twins``: a train or val sample that is a shifted or cropped copy of a test sample
(the same scene cut with another window, restretched and re-compressed) leaves the split, as
search/twins.py tells it; the test split never changes; off, split.json is what it was before the
setting; the search's result is cached in the data folder and searched again only when a sample
changes (:mod:`search.dataset`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import search.twins as twins
from search.dataset import TWINS_CACHE, prepare_data
from tests.search.test_shifted_twins_review26 import sar_scene


def _scene(seed: int, shape: tuple[int, int], ships: int = 5) -> np.ndarray:
    """A SAR-like scene (test_shifted_twins_review26.sar_scene) drawn from ``seed``."""
    return sar_scene(np.random.default_rng(seed), shape, ships)


def _save(folder: Path, name: str, image: np.ndarray) -> None:
    """An hrsid-mini layout sample: R=G=B JPEG and a mask with one ship (green > 127)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    counts = np.clip(np.round(image), 0, 255).astype(np.uint8)
    Image.fromarray(np.repeat(counts[..., None], 3, axis=2)).save(folder / "images" / f"{name}.jpg", quality=90)
    mask = np.zeros((*counts.shape, 3), np.uint8)
    mask[20:30, 20:24, 1] = 255
    Image.fromarray(mask).save(folder / "masks" / f"{name}.png")


def _sources(tmp_path: Path) -> list[str]:
    """Three data sets, wholly test, train and val: test ``t_scene`` is a crop of one scene whose
    other crop, ``tr_twin`` (origin (50, 40) in t_scene's pixels, 110 x 160 px shared, restretched),
    is in training; every other chip is a scene of its own."""
    scene = _scene(1, (220, 260))
    _save(tmp_path / "test", "t_scene", scene[0:160, 0:200])
    _save(tmp_path / "test", "t_other", _scene(2, (150, 190)))
    _save(tmp_path / "train", "tr_twin", 255 * (np.clip(scene[50:210, 40:240], 0, 255) / 255) ** 0.8)
    _save(tmp_path / "train", "tr_other", _scene(3, (150, 170)))
    _save(tmp_path / "train", "tr_other2", _scene(4, (140, 180)))
    _save(tmp_path / "val", "va_other", _scene(5, (130, 190)))
    return [f"hrsid-mini:{tmp_path / part}" for part in ("test", "train", "val")]


def _cfg(tiny_cfg: dict[str, Any], sources: list[str], shifted: bool) -> dict[str, Any]:
    # [data] val_twins off: these tests are about the test split's twins (its own: test_val_twins_split.py)
    tiny_cfg["data"].update(source=sources, source_roles=["test", "train", "val"], shifted_twins=shifted,
                            val_twins=False)
    return tiny_cfg


def _names(split: dict[str, Any], part: str) -> list[str]:
    return [split["names"][str(i)].split("/")[-1] for i in split[part]]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the twin search ran (search.twins.find_pairs, as prepare_data calls it)."""
    calls: list[int] = []
    real = twins.find_pairs

    def find_pairs(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(twins, "find_pairs", find_pairs)
    return calls


def test_a_shifted_crop_of_a_test_sample_leaves_training_and_is_recorded(tmp_path: Path,
                                                                         tiny_cfg: dict[str, Any]) -> None:
    sources = _sources(tmp_path)
    root = tmp_path / "out" / "data"
    data = prepare_data(_cfg(tiny_cfg, sources, True), root)
    split = json.loads((root / "split.json").read_text())
    assert _names(split, "test") == ["t_other", "t_scene"]  # the whole test set, as without the rule
    assert sorted(_names(split, "train")) == ["tr_other", "tr_other2"] and _names(split, "val") == ["va_other"]
    assert [split["names"][str(i)].split("/")[-1] for i in data.train_seeds] == _names(split, "train")
    (record,) = split["dropped"]["shifted_twins"]
    assert split["dropped"].keys() == {"shifted_twins"}
    twin_id = next(int(i) for i, n in split["names"].items() if n.endswith("tr_twin"))
    assert {k: record[k] for k in ("id", "from", "twin_of", "offset")} == {
        "id": twin_id, "from": "train", "twin_of": [split["names"][str(split["test"][1])]], "offset": [50, 40]}
    assert record["name"].endswith("tr_twin")
    assert record["overlap"] == pytest.approx(110 * 160 / (160 * 200), abs=1e-3)
    assert record["ncc_texture"] >= twins.THRESHOLD
    # what training reads: the arrays hold no twin
    with np.load(root / "train.npz") as f:
        assert sorted(int(s) for s in f["seeds"]) == sorted(split["train"]) and twin_id not in f["seeds"]


def test_off_nothing_is_dropped_and_split_json_is_as_before(tmp_path: Path, tiny_cfg: dict[str, Any],
                                                            counted: list[int]) -> None:
    sources = _sources(tmp_path)
    root = tmp_path / "out" / "data"
    prepare_data(_cfg(tiny_cfg, sources, False), root)
    assert not counted and not (root / TWINS_CACHE).exists()
    ordered = [f"hrsid-mini.{k}/{stem}" for k, stems in ((1, ["t_other", "t_scene"]),
                                                         (2, ["tr_other", "tr_other2", "tr_twin"]),
                                                         (3, ["va_other"])) for stem in stems]
    # what the code before [data] shifted_twins wrote for this config, byte for byte
    expected = {"source": [f"hrsid-mini:{tmp_path / p}" for p in ("test", "train", "val")],
                "split_seed": tiny_cfg["data"]["split_seed"],
                "roles": ["test", "train", "val"], "train": [2, 3, 4], "val": [5], "test": [0, 1],
                "names": {str(i): n for i, n in enumerate(ordered)}}
    written = (root / "split.json").read_bytes()
    assert json.loads(written)["names"] == expected["names"], "the sample names are not what this test assumed"
    assert written == json.dumps(expected, indent=1).encode()


def told_to_turn_it_off(out: Path, off: dict[str, Any], on: dict[str, Any], advice: str) -> None:
    """A search split under config ``off`` that has a record is refused under ``on`` with ``advice``
    (a regex), and resumes under ``off`` as it was."""
    prepare_data(copy.deepcopy(off), out / "data")
    (out / "records").mkdir()
    (out / "records" / "c0.json").write_text("{}")
    with pytest.raises(ValueError, match=advice):
        prepare_data(on, out / "data")
    prepare_data(off, out / "data")


def test_a_search_with_records_made_without_the_rule_is_told_to_turn_it_off(tmp_path: Path,
                                                                             tiny_cfg: dict[str, Any]) -> None:
    sources = _sources(tmp_path)
    off = copy.deepcopy(_cfg(tiny_cfg, sources, False))
    told_to_turn_it_off(tmp_path / "out", off, _cfg(tiny_cfg, sources, True), r"shifted_twins = false")


def test_the_twin_search_is_cached_until_a_sample_changes(tmp_path: Path, tiny_cfg: dict[str, Any],
                                                          counted: list[int]) -> None:
    sources = _sources(tmp_path)
    root = tmp_path / "out" / "data"
    cfg = _cfg(tiny_cfg, sources, True)
    prepare_data(cfg, root)
    assert len(counted) == 1 and (root / TWINS_CACHE).is_file()
    first = (root / "split.json").read_bytes()
    prepare_data(cfg, root)  # a resume: the same samples, the same settings
    assert len(counted) == 1 and (root / "split.json").read_bytes() == first
    _save(tmp_path / "train", "tr_other", _scene(13, (150, 170)))  # a sample edited in place, same name
    prepare_data(cfg, root)
    assert len(counted) == 2 and (root / "split.json").read_bytes() == first
    prepare_data(cfg, root)
    assert len(counted) == 2


def test_synthetic_scenes_are_not_searched(tmp_path: Path, tiny_cfg: dict[str, Any], counted: list[int]) -> None:
    tiny_cfg["data"].update(source=["synthetic:seeds=1000-1001,size=64", "synthetic:seeds=1002-1003,size=64",
                                    "synthetic:seeds=1004,size=64"],
                            source_roles=["train", "val", "test"], shifted_twins=True)
    prepare_data(tiny_cfg, tmp_path / "data")
    assert not counted and not (tmp_path / "data" / TWINS_CACHE).exists()
    assert "dropped" not in json.loads((tmp_path / "data" / "split.json").read_text())
