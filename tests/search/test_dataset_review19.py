"""Review of search.dataset / search.data: cached arrays, source weights, sampling edge cases."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from search.dataset import prepare_data, split_arrays


def coco_chips(root: Path, names: tuple[str, str, str] = ("blue", "green", "red"), n: int = 5,
               size: int = 64) -> str:
    """``n`` 3-band GeoTIFFs whose band descriptions are ``names`` (by default stored blue, green, red),
    one bright ship each (COCO); no two samples alike, since the split drops duplicates."""
    images, annotations = [], []
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
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


def test_arrays_follow_the_model_bands_when_only_the_band_order_changes(tmp_path: Path,
                                                                         tiny_cfg: dict[str, Any]) -> None:
    """The arrays were written only when split.json changed: a config naming the model's bands in
    another order (or another number of them) trained on arrays cut for the old one, and normalised
    them per band in the old order, while the manifest named the new."""
    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"]["source"] = coco_chips(tmp_path / "set")
    first = prepare_data(cfg, tmp_path / "data")
    assert first.norm.mean[0] > 150 > 50 > first.norm.mean[2]  # red first
    cfg["export"]["bands"] = ["blue", "green", "red"]
    again = prepare_data(cfg, tmp_path / "data")
    assert again.norm.mean[0] < 50 < 150 < again.norm.mean[2], again.norm  # blue first now
    assert split_arrays(again, "train")[0].image[0].mean() < 50
    (tmp_path / "data" / "val.npz").unlink()  # a split.json without its arrays: written again, not a FileNotFoundError
    assert prepare_data(cfg, tmp_path / "data") == again and (tmp_path / "data" / "val.npz").is_file()


def _scene(seed: int, vessel: bool, value: int = 20) -> Any:
    from search.data import SceneArrays

    image = np.full((1, 64, 64), value, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    if vessel:
        mask[10:14, 10:30] = 1
        image[0, 10:14, 10:30] = 200
    return SceneArrays(seed, image, mask)


def test_a_weight_0_set_that_alone_has_vessels_never_draws() -> None:
    """Vessel patches used to be drawn among weights that were all 0: NaN probabilities, a traceback."""
    from search.data import Normalization, PatchSampler, SamplingOptions

    opts = SamplingOptions(0.6, augment=(), group_weights=(1.0, 0.0))
    sampler = PatchSampler([_scene(0, False), _scene(1, True, value=60)], Normalization((0.0,), (1.0,)), 16, opts,
                           np.random.default_rng(0), groups=[0, 1])
    images, masks = sampler.batch(20)
    assert not masks.any() and not (images == 60).any()


def test_weights_only_on_sets_held_out_whole_are_refused_with_a_clear_error(tiny_cfg: dict[str, Any]) -> None:
    from search.config import check_values
    from search.data import Normalization, PatchSampler, SamplingOptions

    opts = SamplingOptions(0.6, augment=(), group_weights=(0.0, 1.0))
    with pytest.raises(ValueError, match="weight 0"):
        PatchSampler([_scene(0, True)], Normalization((0.0,), (1.0,)), 16, opts, np.random.default_rng(0), groups=[0])
    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"].update(source=["coco:a", "coco:b"], source_roles=["split", "test"],
                       source_weights=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"source_weights \[0.0, 1.0\] give weight 0 to every data set that trains"):
        check_values(cfg)


@pytest.mark.parametrize("key, value", [("source_roles", ["test"]), ("source_weights", [1.0, 0.0])])
def test_roles_or_weights_with_a_synthetic_source_are_refused_not_ignored(tiny_cfg: dict[str, Any], key: str,
                                                                          value: list[Any]) -> None:
    """The synthetic seed ranges are one set, never split: the settings were silently without effect."""
    from search.config import check_values

    cfg = copy.deepcopy(tiny_cfg)
    assert cfg["data"]["source"] == "synthetic"
    cfg["data"][key] = value
    with pytest.raises(ValueError, match=f"{key} apply to a real"):
        check_values(cfg)
