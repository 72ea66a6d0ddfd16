"""A validation split without a true vessel is refused wherever a cut is chosen on it by object F1.

With no truth, hil's object F1 is 1 for a cut that finds nothing and 0 for every other, so the
"best" threshold / score cut / second-stage cut was the one that blinds the model, written into the
flight manifest as if chosen on evidence. Now: a ValueError naming the split and what to change.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from search.candidate import choose_on_validation
from search.data import Normalization
from search.dataset import SearchData
from tests.conftest import make_brightness_bundle


def _shipless_data(root: Path, vessel: bool = False) -> SearchData:
    """A real-source SearchData whose one validation sample has a bright patch, and a vessel only if asked."""
    image = np.full((1, 64, 64), 20, np.uint8)
    image[0, 10:14, 10:30] = 200  # something bright for the network to (falsely) find
    mask = np.zeros((64, 64), np.uint8)
    if vessel:
        mask[10:14, 10:30] = 1
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "val.npz", seeds=np.array([0]), image_0=image, mask_0=mask)
    return SearchData(root, (1,), (0,), Normalization((20.0,), (50.0,)), source="coco:/nowhere")


def test_choosing_postprocessing_on_a_validation_split_without_ships_is_refused(tmp_path: Path) -> None:
    data = _shipless_data(tmp_path / "data")
    prob = np.zeros((64, 64), np.float32)
    prob[10:14, 10:30] = 0.7  # a detection at threshold 0.5, none at 0.8: 0.8 "won" with F1 1
    cfg = {"export": {"choose_postprocessing": True, "thresholds": [0.5, 0.8], "min_areas_px": [4],
                      "min_scores": [0.0]}}
    with pytest.raises(ValueError, match=r"validation split .* no true vessel.*val_fraction"):
        choose_on_validation([prob], cfg, data)
    # the same split with its vessel: chosen as before (the detection is the ship)
    with_ship = _shipless_data(tmp_path / "data2", vessel=True)
    chosen = choose_on_validation([prob], cfg, with_ship)
    assert chosen is not None and chosen["chosen"]["threshold"] == 0.5 and chosen["chosen"]["f1"] == 1.0


def _coco_chips(root: Path, ships: set[int], n: int = 4, size: int = 64) -> str:
    """``n`` distinct 3-band chips, each with a bright patch; a COCO ship annotation on those in ``ships``."""
    root.mkdir(parents=True)
    images, annotations = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        counts = (np.full((3, size, size), 30, np.uint8) + rng.integers(0, 10, (3, size, size)).astype(np.uint8))
        counts[:, 20:26, 10:40] = 250
        with rasterio.open(root / f"s{i}.tif", "w", driver="GTiff", height=size, width=size, count=3,
                           dtype="uint8") as dst:
            dst.write(counts)
        images.append({"id": i, "file_name": f"s{i}.tif", "height": size, "width": size})
        if i in ships:
            annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [10, 20, 30, 6], "iscrowd": 0})
    (root / "ships.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "ship"}]}))
    return f"coco:{root}"


def test_a_second_stage_on_a_split_whose_val_has_no_ships_is_refused_before_training_rows(tmp_path: Path) -> None:
    from search.discriminate import discriminate

    # training candidates of both kinds (a bright ship, bright patches that are none), so the fit
    # itself succeeds: before, the cut was then "chosen" on a val without truth and shipped
    source = _coco_chips(tmp_path / "set", ships={0}, n=5)
    (tmp_path / "split.json").write_text(json.dumps({"source": [source], "train": [0, 1, 2], "val": [3, 4],
                                                     "test": []}))
    make_brightness_bundle(tmp_path / "bright", size=64, threshold=0.3)
    with pytest.raises(ValueError, match=r"split\.json: its val samples hold no true vessel.*val_fraction"):
        discriminate(tmp_path / "bright", tmp_path / "split.json", tmp_path / "out", tmp_path / "work")
    assert not (tmp_path / "work" / "train").exists()  # refused before the train split's hil run


def test_a_search_choosing_a_cut_on_a_shipless_validation_split_is_refused_before_training(
        tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    from search.evolution import run_search

    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"]["source"] = _coco_chips(tmp_path / "set", ships=set(), n=5)
    cfg["export"]["choose_postprocessing"] = True
    cfg["evolution"].update(population=1, generations=1, elite=0)
    with pytest.raises(ValueError, match=r"validation split .* no true vessel.*\[export\] choose_postprocessing"):
        run_search(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "candidates").exists()  # nothing trained
