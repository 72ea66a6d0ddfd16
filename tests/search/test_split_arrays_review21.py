"""The split arrays (``OUT/data/train.npz``, ``val.npz``) of a real source must follow its truth: a
mask corrected in place keeps every sample's name, and so the split, and the arrays were reused with
the old masks, which the search went on training and selecting against without a word."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search import dataset
from search.dataset import prepare_data, read_split
from tests.search.test_split_cache_review16b import write_mini_hrsid


def test_arrays_are_written_again_when_the_truth_changes_under_the_same_split(
        tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    root = write_mini_hrsid(tmp_path / "set", 4)
    out = tmp_path / "out" / "data"
    tiny_cfg["data"].update(source=f"hrsid-mini:{root}", split_seed=0, val_fraction=0.2, test_fraction=0.2)
    first = prepare_data(tiny_cfg, out)
    assert {int(s.mask.sum()) for s in read_split(out, "train")} == {16}
    write_mini_hrsid(root, 8)  # the annotations corrected: 8 x 8 ships, the same images and names
    dataset._ARRAYS.clear()  # a new process, as a resumed search is
    second = prepare_data(tiny_cfg, out)
    assert second.train_seeds == first.train_seeds and second.val_seeds == first.val_seeds
    assert {int(s.mask.sum()) for s in read_split(out, "train")} == {64}
    assert {int(s.mask.sum()) for s in read_split(out, "val")} == {64}
    # Nothing changed: the arrays are kept (not written again).
    stamp = (out / "train.npz").stat().st_mtime_ns
    prepare_data(tiny_cfg, out)
    assert (out / "train.npz").stat().st_mtime_ns == stamp
