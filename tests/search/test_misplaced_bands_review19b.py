"""The search's training arrays follow the payload's band rule (runtime.bands, rule 2): a sample that
names some of the model's bands at other positions is refused when the arrays are prepared, as the
runtime refuses its tiles (bad_shape), rather than trained on as it is."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from runtime.bands import misplaced_bands
from search.dataset import prepare_data


def _coco(root: Path, names: tuple[str, str, str], n: int = 5, size: int = 64) -> str:
    """``n`` 3-band GeoTIFFs whose band descriptions are ``names``, one bright ship each (COCO)."""
    images, annotations = [], []
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)  # no two samples alike: the split drops duplicates
    for i in range(n):
        counts = np.stack([np.full((size, size), v, np.uint8) for v in (20, 90, 200)])
        counts = counts + rng.integers(0, 10, counts.shape).astype(np.uint8)
        counts[:, 20:26, 10:40] = 250
        with rasterio.open(root / f"s{i}.tif", "w", driver="GTiff", height=size, width=size, count=3,
                           dtype="uint8") as dst:
            dst.write(counts)
            for band, name in enumerate(names, start=1):
                dst.set_band_description(band, name)
        images.append({"id": i, "file_name": f"s{i}.tif", "height": size, "width": size})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [10, 20, 30, 6], "iscrowd": 0})
    (root / "ships.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "ship"}]}))
    return f"coco:{root}"


def test_a_source_whose_bands_the_runtime_refuses_is_not_trained_on(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """Near-infrared, red, green into a red, green, blue model: the runtime rejects such tiles (their
    red would feed the model's green), so a network trained on them could never be scored or flown.
    The arrays were written as they were, silently."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"]["source"] = _coco(tmp_path / "set", ("nir", "red", "green"))
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
        cfg["data"]["source"] = _coco(tmp_path / f"set{k}", names)
        prepare_data(cfg, tmp_path / f"data{k}")
        assert (tmp_path / f"data{k}" / "train.npz").is_file()
