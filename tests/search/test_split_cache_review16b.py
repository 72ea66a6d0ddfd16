"""The in-process cache of the split arrays (:func:`search.dataset.split_arrays`) must follow a
split written again under the same folder: else the sampler and the normalisation of the second
split train on the first split's training samples, some of which it holds out as test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from search.dataset import prepare_data, split_arrays


def write_mini_hrsid(root: Path, side: int = 4) -> Path:
    """``root`` as an hrsid-mini set of ten 16 x 16 noise images, each with one ``side``-pixel square
    ship in its mask (green): small enough to split and prepare in a test."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for k in range(10):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "images" / f"img{k}.jpg")
        mask = np.zeros((16, 16, 3), np.uint8)
        mask[4:4 + side, 4:4 + side, 1] = 255
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
    return root


def test_a_split_made_again_in_one_process_trains_on_its_own_samples(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    root = write_mini_hrsid(tmp_path / "set")
    out = tmp_path / "out" / "data"
    tiny_cfg["data"].update(source=f"hrsid-mini:{root}", split_seed=0, val_fraction=0.2, test_fraction=0.2)
    first = prepare_data(tiny_cfg, out)
    assert [s.seed for s in split_arrays(first, "train")] == list(first.train_seeds)
    tiny_cfg["data"]["split_seed"] = 1  # no records yet: the data is simply prepared again
    second = prepare_data(tiny_cfg, out)
    assert second.train_seeds != first.train_seeds
    assert [s.seed for s in split_arrays(second, "train")] == list(second.train_seeds)
    assert [s.seed for s in split_arrays(second, "val")] == list(second.val_seeds)
