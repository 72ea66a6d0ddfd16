"""The split arrays (``OUT/data/train.npz``, ``val.npz``) of a real source must follow its truth: a
mask corrected in place keeps every sample's name, and so the split, and the arrays were reused with
the old masks, which the search went on training and selecting against without a word."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from search import dataset
from search.dataset import prepare_data, read_split


def _write_masks(root: Path, side: int) -> None:
    for k in range(10):
        mask = np.zeros((16, 16, 3), np.uint8)
        mask[4:4 + side, 4:4 + side, 1] = 255
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")


def test_arrays_are_written_again_when_the_truth_changes_under_the_same_split(
        tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(10):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "images" / f"img{k}.jpg")
    _write_masks(root, 4)
    out = tmp_path / "out" / "data"
    tiny_cfg["data"].update(source=f"hrsid-mini:{root}", split_seed=0, val_fraction=0.2, test_fraction=0.2)
    first = prepare_data(tiny_cfg, out)
    assert {int(s.mask.sum()) for s in read_split(out, "train")} == {16}
    _write_masks(root, 8)  # the annotations corrected: 8 x 8 ships, the same files and names
    dataset._ARRAYS.clear()  # a new process, as a resumed search is
    second = prepare_data(tiny_cfg, out)
    assert second.train_seeds == first.train_seeds and second.val_seeds == first.val_seeds
    assert {int(s.mask.sum()) for s in read_split(out, "train")} == {64}
    assert {int(s.mask.sum()) for s in read_split(out, "val")} == {64}
    # Nothing changed: the arrays are kept (not written again).
    stamp = (out / "train.npz").stat().st_mtime_ns
    prepare_data(tiny_cfg, out)
    assert (out / "train.npz").stat().st_mtime_ns == stamp
