"""What could leak a search's test split into its training: the same image in two parts of a source
list, HRSID tiles overlapping a test tile, synthetic parts on reserved seeds, and validation
GeoTIFFs left stale by a killed run (:mod:`search.dataset`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import search.dataset as dataset
from search.dataset import prepare_data, split_source


def _tiles(root: Path, names: list[str], seed: int = 0) -> Path:
    """An hrsid-mini layout folder of 16 px tiles, each of distinct random pixels, with a vessel."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in names:
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "images" / f"{name}.jpg")
        mask = np.zeros((16, 16, 3), np.uint8)
        mask[4:8, 4:8, 1] = 255
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return root


def _real_cfg(tiny_cfg: dict[str, Any], source: Any, split_seed: int, fractions: float) -> dict[str, Any]:
    tiny_cfg["data"].update(source=source, split_seed=split_seed, val_fraction=fractions, test_fraction=fractions)
    return tiny_cfg


def split_with_a_twin_in_test(tiny_cfg: dict[str, Any], source: str,
                              root: Path) -> tuple[dict[str, Any], tuple[set[int], ...], dict[str, Any]]:
    """``prepare_data`` on a 20-sample ``source`` whose img1N twins img0N, at the first split seed
    (20% test, 20% validation) that puts a twin of a training or validation sample in test: the
    split file, the chips N of (train, val, test), and the config."""
    fractions = {"test_fraction": 0.2, "val_fraction": 0.2}
    seed = next(s for s in range(50) if (lambda tr, va, te: any((i + 10) % 20 in te for i in tr + va))(
        *split_source(20, {**fractions, "split_seed": s})))
    cfg = _real_cfg(tiny_cfg, source, seed, 0.2)
    prepare_data(cfg, root)
    split = json.loads((root / "split.json").read_text())
    chip = {int(i): int(n.split("/")[-1].removeprefix("img")) % 10 for i, n in split["names"].items()}
    return split, tuple({chip[i] for i in split[k]} for k in ("train", "val", "test")), cfg


def _pixels(path: Path) -> bytes:
    return np.asarray(Image.open(path)).tobytes()


def test_an_image_in_two_parts_keeps_only_its_most_held_out_copy(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    names = [f"img{i:02d}" for i in range(10)]
    whole = _tiles(tmp_path / "whole", names)
    # the same files under another folder and other names: only their pixels tell they are the same
    sub = tmp_path / "sub"
    (sub / "images").mkdir(parents=True)
    (sub / "masks").mkdir()
    for name in names[:6]:
        for folder, ext in (("images", "jpg"), ("masks", "png")):
            (sub / folder / f"copy_{name}.{ext}").symlink_to(whole / folder / f"{name}.{ext}")
    spec = [f"hrsid-mini:{whole}", f"hrsid-mini:{sub}"]
    leaked_before = []
    for seed in range(20):  # the seeds where splitting each part on its own leaks (the old behaviour)
        a, b = split_source(10, {"split_seed": seed, "test_fraction": 0.2, "val_fraction": 0.2}), \
            split_source(6, {"split_seed": seed, "test_fraction": 0.2, "val_fraction": 0.2})
        held_a = set(a[2]) | set(a[1])
        if any(i in set(b[2]) for i in a[0] + a[1]) or any(i in held_a for i in b[0]):
            leaked_before.append(seed)
    assert leaked_before
    cfg = _real_cfg(tiny_cfg, spec, leaked_before[0], 0.2)
    root = tmp_path / "out" / "data"
    prepare_data(cfg, root)
    split = json.loads((root / "split.json").read_text())
    stem = {int(i): n.split("/")[-1].removeprefix("copy_") for i, n in split["names"].items()}
    train, val, test = ({stem[i] for i in split[k]} for k in ("train", "val", "test"))
    assert not test & train and not test & val and not val & train
    assert split["dropped"]["duplicates"], "what was dropped is recorded in split.json"
    for row in split["dropped"]["duplicates"]:
        assert row["from"] in ("train", "val") and row["copy_of"]
    # the test split is each part's own, unchanged
    assert split["test"] == sorted(split_source(10, cfg["data"])[2] + [10 + i for i in split_source(6, cfg["data"])[2]])



def test_twin_images_within_one_data_set_keep_only_their_most_held_out_copy(tmp_path: Path,
                                                                            tiny_cfg: dict[str, Any]) -> None:
    """SSDD holds byte-identical chips under two names; one data set's seeded split can put one
    twin in test and the other in training. The training copy goes; the test split is unchanged."""
    names = [f"img{i:02d}" for i in range(20)]
    whole = _tiles(tmp_path / "set", names)
    # img10..img19 are byte-identical twins of img00..img09, under their own names
    for k in range(10):
        for folder, ext in (("images", "jpg"), ("masks", "png")):
            target = whole / folder / f"{names[10 + k]}.{ext}"
            target.unlink()
            target.write_bytes((whole / folder / f"{names[k]}.{ext}").read_bytes())
    split, (train, val, test), cfg = split_with_a_twin_in_test(tiny_cfg, f"hrsid-mini:{whole}",
                                                               tmp_path / "out" / "data")
    assert not test & train and not test & val and not val & train
    assert split["test"] == split_source(20, cfg["data"])[2]
    assert split["dropped"]["duplicates"]

def _hrsid_names() -> list[str]:
    # P0001's four tiles overlap their neighbours by 200 px; P0002's do not overlap anything
    return (["P0001_0_800_0_800", "P0001_600_1400_0_800", "P0001_0_800_600_1400", "P0001_600_1400_600_1400"]
            + [f"P0002_{r}_{r + 800}_0_800" for r in range(0, 8000, 800)])


def _straddles(names: list[str], train: list[int], test: list[int]) -> bool:
    def win(n: str) -> tuple[str, ...]:
        return tuple(n.split("/")[-1].split("_"))

    for i in train:
        for j in test:
            a, b = win(names[i]), win(names[j])
            if a[0] == b[0] and int(a[1]) < int(b[2]) and int(b[1]) < int(a[2]) \
                    and int(a[3]) < int(b[4]) and int(b[3]) < int(a[4]):
                return True
    return False


def test_tiles_overlapping_a_test_tile_leave_train_and_val(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    names = _hrsid_names()
    folder = _tiles(tmp_path / "hrsid", names)
    ordered = sorted(names)  # the loader's order
    straddle = quiet = None
    for seed in range(50):
        tr, va, te = split_source(len(names), {"split_seed": seed, "test_fraction": 0.2, "val_fraction": 0.2})
        if _straddles(ordered, tr + va, te):
            straddle = straddle if straddle is not None else seed
        else:
            quiet = quiet if quiet is not None else seed
    assert straddle is not None and quiet is not None
    for seed, changes in ((straddle, True), (quiet, False)):
        cfg = _real_cfg(tiny_cfg, f"hrsid-mini:{folder}", seed, 0.2)
        root = tmp_path / f"out{seed}" / "data"
        prepare_data(cfg, root)
        split = json.loads((root / "split.json").read_text())
        tr, va, te = split_source(len(names), cfg["data"])
        assert split["test"] == te, "the test split never changes"
        assert not _straddles([split["names"][str(i)] for i in range(len(names))], split["train"] + split["val"], te)
        if changes:
            assert split["dropped"]["overlaps"] and set(split["train"] + split["val"]) < set(tr + va)
        else:  # no straddle: the split, and its split.json, are as they were
            assert (split["train"], split["val"]) == (tr, va) and "dropped" not in split


def test_a_synthetic_part_may_not_use_reserved_seeds(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    tiny_cfg["data"].update(source=["synthetic:seeds=5-9,size=64", "synthetic:seeds=1000-1001,size=64"],
                            source_roles=["train", "val"], min_seed=100)
    with pytest.raises(ValueError, match=r"seeds \[5, 6, 7, 8, 9\] are below min_seed=100"):
        prepare_data(tiny_cfg, tmp_path / "data")
    assert not (tmp_path / "data" / "train.npz").exists()
    tiny_cfg["data"]["source"] = "synthetic:seed=7,size=64"  # one spec, not a list: the same rule
    tiny_cfg["data"]["source_roles"] = []
    with pytest.raises(ValueError, match=r"seeds \[7\] are below min_seed=100"):
        prepare_data(tiny_cfg, tmp_path / "data")


def _tif_shape(data: Any) -> tuple[int, int, int]:
    import rasterio

    with rasterio.open(data.val_scene(data.val_seeds[0])[0]) as f:
        return f.count, f.height, f.width


def test_validation_geotiffs_are_written_before_the_npz_that_commits_them(
        tmp_path: Path, tiny_cfg: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import flightsim.synthetic as fs

    root = tmp_path / "data"
    tiny_cfg["data"].update(train_scenes=1, train_scene_size=64, val_scenes=1, val_scene_size=128)
    prepare_data(tiny_cfg, root)  # settings A: 128 px validation scenes
    real = fs.write_scene

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed while writing the validation GeoTIFFs")

    # 128 -> 96 killed mid-write -> 96 again; then 96 -> 64 killed -> 96 again (back to the settings
    # of the npz that was there before the killed run)
    for killed_size, size in ((96, 96), (64, 96)):
        tiny_cfg["data"]["val_scene_size"] = killed_size
        monkeypatch.setattr(fs, "write_scene", killed)
        with pytest.raises(KeyboardInterrupt):
            prepare_data(tiny_cfg, root)
        monkeypatch.setattr(fs, "write_scene", real)
        dataset._ARRAYS.clear()
        tiny_cfg["data"]["val_scene_size"] = size
        data = prepare_data(tiny_cfg, root)
        assert dataset.split_arrays(data, "val")[0].image.shape == _tif_shape(data) == (3, size, size)
