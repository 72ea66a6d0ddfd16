"""The search's training arrays follow the payload's band rule (runtime.bands, rule 2): a sample that
names some of the model's bands at other positions is refused when the arrays are prepared, as the
runtime refuses its tiles (bad_shape), rather than trained on as it is."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from runtime.bands import misplaced_bands
from search.dataset import prepare_data
from tests.search.test_dataset_review19 import coco_chips


def test_a_source_whose_bands_the_runtime_refuses_is_not_trained_on(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """Near-infrared, red, green into a red, green, blue model: the runtime rejects such tiles (their
    red would feed the model's green), so a network trained on them could never be scored or flown.
    The arrays were written as they were, silently."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"]["source"] = coco_chips(tmp_path / "set", ("nir", "red", "green"))
    model_bands = [str(b).lower() for b in cfg["export"]["bands"]]
    assert misplaced_bands(["nir", "red", "green"], model_bands) == ["red", "green"]  # what serve rejects
    with pytest.raises(ValueError, match=r"at other positions"):
        prepare_data(cfg, tmp_path / "data")
    assert not (tmp_path / "data" / "train.npz").exists()


def test_sources_the_runtime_takes_still_prepare(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """Bands named in the model's order, or in another order of the same names (reordered), or names
    the model does not use (fed as they are) still make arrays."""
    for k, names in enumerate((("red", "green", "blue"), ("blue", "green", "red"), ("band1", "band2", "band3"))):
        cfg = copy.deepcopy(tiny_cfg)
        cfg["data"]["source"] = coco_chips(tmp_path / f"set{k}", names)
        prepare_data(cfg, tmp_path / f"data{k}")
        assert (tmp_path / f"data{k}" / "train.npz").is_file()
