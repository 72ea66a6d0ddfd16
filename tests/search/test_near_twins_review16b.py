"""Near twins: the same image cut a row or two shorter and saved again (SSDD's 000226 and 000227)
are not byte-identical, so the pixel digest alone let one sit in test and the other in training
(:func:`search.dataset._near_twins`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from search.dataset import split_source
from tests.search.test_split_leaks import split_with_a_twin_in_test


def _set_with_near_twins(root: Path) -> Path:
    """img00..img09 distinct 64 px grey chips; img10..img19 the same chips two rows shorter, saved
    again as JPEG (so their pixels differ a little from the originals')."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(10):
        grey = rng.integers(0, 255, (64, 64), dtype=np.uint8)
        for name, rows in ((f"img{k:02d}", 64), (f"img{k + 10:02d}", 62)):
            Image.fromarray(np.repeat(grey[:rows, :, None], 3, axis=2)).save(root / "images" / f"{name}.jpg",
                                                                              quality=95)
            mask = np.zeros((rows, 64, 3), np.uint8)
            mask[4:8, 4:8, 1] = 255
            Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return root


def test_a_near_twin_of_a_test_chip_leaves_training(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    whole = _set_with_near_twins(tmp_path / "set")
    a = np.asarray(Image.open(whole / "images" / "img00.jpg"))
    b = np.asarray(Image.open(whole / "images" / "img10.jpg"))
    assert a[:62].tobytes() != b.tobytes(), "not byte-identical: the digest alone cannot tell them"
    split, (train, val, test), _ = split_with_a_twin_in_test(tiny_cfg, f"hrsid-mini:{whole}",
                                                               tmp_path / "out" / "data")
    assert not test & train and not test & val and not val & train
    assert split["test"] == split_source(20, tiny_cfg["data"])[2]
    # only twins leave: every chip of the set is still somewhere
    assert train | val | test == set(range(10))
