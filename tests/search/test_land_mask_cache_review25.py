"""Review 25: a sea/land mask edited in place was not seen by the search's arrays.

``search.dataset._prepare_source`` writes the training and validation arrays again when the split or
their layout changes; the layout's ``content`` digest covers each sample's pixels and truth, but not
its land mask (``[data] land_masks``, a separate file), so a mask corrected under the same name left
the old land in the arrays, and the land head trained on it. The layout now holds a digest of the
mask files when land masks are used (and only then: a search without them keeps its layout). Real
PNG masks and hrsid-mini tiles in tmp_path, through rasterio.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from search.dataset import prepare_data, split_arrays
from tests.search.test_real_data import _hrsid_mini, _with_land_masks


def _land_columns(data: Any, names: dict[str, str], stem: str) -> int:
    """How many columns of land the training or validation arrays hold for sample ``stem``."""
    for part in ("train", "val"):
        for scene in split_arrays(data, part):
            if names[str(scene.seed)].endswith(stem):
                return int(scene.land[0].sum())
    raise AssertionError(f"{stem} is in neither train nor val")


def test_a_land_mask_edited_in_place_is_read_again(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    cfg = _with_land_masks(tmp_path, tiny_cfg)  # p0..p3 have a mask: 40 columns of land on the left
    data = prepare_data(cfg, tmp_path / "data")
    split = json.loads((tmp_path / "data" / "split.json").read_text())
    names = split["names"]
    stem = next(names[str(i)].split("/")[-1] for i in split["train"] + split["val"]
                if not names[str(i)].endswith("p4"))
    assert _land_columns(data, names, stem) == 40
    sea = np.full((192, 192), 255, np.uint8)
    sea[:, :100] = 0  # the coast corrected: 100 columns of land, the same file name
    with rasterio.open(tmp_path / "sealand" / f"{stem}.png", "w", driver="PNG", height=192, width=192,
                       count=1, dtype="uint8") as dst:
        dst.write(sea[None])
    again = prepare_data(cfg, tmp_path / "data")
    assert _land_columns(again, names, stem) == 100  # not the stale 40
    assert json.loads((tmp_path / "data" / "split.json").read_text()) == split  # the split itself is unchanged


def test_a_search_without_land_masks_keeps_its_layout(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """No ``land`` key without land masks: arrays written before this change are not written again."""
    _hrsid_mini(tmp_path / "set", 5)
    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "source": f"hrsid-mini:{tmp_path / 'set'}"}}
    prepare_data(cfg, tmp_path / "data")
    with np.load(tmp_path / "data" / "train.npz") as f:
        assert set(json.loads(str(f["layout"]))) == {"in_channels", "bands", "content"}
