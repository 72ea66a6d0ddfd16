"""scripts/shifted_twins.py: test chips that are shifted or cropped copies of a training chip.

search/dataset.py's near-twin rule compares images anchored at their corners, so a copy cut out of
the middle of another chip (SSDD's overlapping crops of one scene) escapes it. The script finds such
pairs at any offset; these check its core on synthetic images (a shifted crop, restretched and noisier,
is found at its offset; a distinct image with ships of its own is not) and on two real SSDD chips.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from scripts.shifted_twins import THRESHOLD, find_twins, is_twin, ncc_at, ncc_map, shifted_match

SSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ssdd" / "images"


def sar_scene(rng: np.random.Generator, shape: tuple[int, int], ships: int = 4) -> np.ndarray:
    """Speckle (exponential) over a smooth sea, with a few bright ships: SAR-like counts, float."""
    sea = 20 + 10 * ndimage.gaussian_filter(rng.standard_normal(shape), 12)
    image = sea * rng.exponential(1.0, shape)
    for _ in range(ships):
        y, x = rng.integers(10, shape[0] - 20), rng.integers(10, shape[1] - 10)
        image[y:y + 14, x:x + 3] += 180
    return image


def as_counts(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def test_a_shifted_restretched_crop_is_found_at_its_offset_and_a_distinct_chip_is_not() -> None:
    rng = np.random.default_rng(3)
    scene = sar_scene(rng, (260, 300), ships=6)
    a = as_counts(scene[10:170, 20:230])  # 160 x 210
    # the same scene cut elsewhere (shares 43% of a), stretched otherwise and re-noised: not the same counts
    crop = scene[101:251, 87:297]  # origin (91, 67) in a's frame
    b = as_counts(255 * (np.clip(crop, 0, 255) / 255) ** 0.7 + rng.normal(0, 4, crop.shape))
    distinct = as_counts(sar_scene(np.random.default_rng(4), (150, 210), ships=6))

    match = shifted_match(a.astype(np.float32), b.astype(np.float32))
    assert match is not None and (match["dy"], match["dx"]) == (91, 67), match
    assert match["overlap"] == pytest.approx(69 * 143 / (150 * 210), abs=1e-3)
    assert match["ncc_texture"] > 0.5 and is_twin(match)
    other = shifted_match(a.astype(np.float32), distinct.astype(np.float32))
    assert other is not None and abs(other["ncc_texture"]) < THRESHOLD and not is_twin(other), other
    # the roles swapped: b's offset in a is minus a's offset in b
    back = shifted_match(b.astype(np.float32), a.astype(np.float32))
    assert back is not None and (back["dy"], back["dx"]) == (-91, -67) and is_twin(back)


def test_the_masked_correlation_map_is_the_correlation_over_each_overlap() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random((23, 31)), rng.random((17, 40))
    ncc, n, dys, dxs = ncc_map(a, b, min_overlap=0.3)
    checked = 0
    for i in range(0, ncc.shape[0], 3):
        for j in range(0, ncc.shape[1], 5):
            r, pixels = ncc_at(a, b, int(dys[i]), int(dxs[j]))
            if pixels >= 0.3 * b.size:
                assert ncc[i, j] == pytest.approx(r, abs=1e-9) and n[i, j] == pixels
                checked += 1
            else:
                assert np.isnan(ncc[i, j])
    assert checked > 20


def test_find_twins_flags_the_test_chip_whose_crop_is_in_training() -> None:
    rng = np.random.default_rng(6)
    scene = sar_scene(rng, (200, 240), ships=5)
    chips = {0: as_counts(scene[0:140, 0:180]),  # test, twin of 2
             1: as_counts(sar_scene(np.random.default_rng(7), (140, 180))),  # test, no twin
             2: as_counts(scene[50:200, 40:240] * 0.8 + 10),  # train
             3: as_counts(sar_scene(np.random.default_rng(8), (150, 170))),  # train
             4: as_counts(sar_scene(np.random.default_rng(9), (130, 190)))}  # val
    source = {i: SimpleNamespace(name=f"chip{i}", read=lambda c=c: c[None]) for i, c in chips.items()}
    split = {"test": [0, 1], "train": [2, 3], "val": [4], "names": {str(i): f"chip{i}" for i in chips}}
    result = find_twins(split, source, coarse=4, log=lambda *_: None)
    summary = result["summary"]
    assert summary["test_with_twin"] == 1 and summary["test_names_with_twin"] == ["chip0"]
    assert summary["test_names_without_twin"] == ["chip1"]
    best = result["per_test"]["chip0"]["best"]
    assert (best["other"], best["dy"], best["dx"]) == ("chip2", 50, 40)
    assert [p["other"] for p in result["pairs"] if p["twin"]] == ["chip2"]
    json.dumps(result)  # what the script writes


@pytest.mark.skipif(not SSDD.is_dir(), reason="../shared/data/ssdd is not beside the project")
def test_two_real_ssdd_crops_of_one_scene_are_twins_and_two_scenes_are_not() -> None:
    """SSDD 001023 (test in models/sar's split) is 001024 (training) shifted by (-112, 16); 001055 and
    000638 are two scenes whose bright points a translation lines up (pixel correlation 0.58)."""
    from flightsim.sources import open_source
    from scripts.shifted_twins import grey

    files = sorted(im["file_name"] for im in json.loads((SSDD / "ssdd_coco.json").read_text())["images"])
    source = open_source(f"coco:{SSDD}")

    def chip(stem: str) -> np.ndarray:
        sample = source[files.index(f"{stem}.jpg")]
        assert sample.name == stem
        return grey(sample.read())

    twin = shifted_match(chip("001023"), chip("001024"))
    assert twin is not None and (twin["dy"], twin["dx"]) == (-112, 16) and twin["ncc"] > 0.99 and is_twin(twin)
    distinct = shifted_match(chip("001055"), chip("000638"))
    assert distinct is not None and distinct["ncc"] > 0.5 and not is_twin(distinct), distinct


def test_a_report_is_scored_apart_by_twin_in_training_or_not() -> None:
    """scripts/shifted_twins.py --report: the SSDD samples with a twin in training pooled apart from
    those without, each group's counts summed (not its samples' scores averaged)."""
    from scripts.shifted_twins import by_twin

    def row(name: str, tp: int, fp: int, fn: int, inter: int, union: int) -> dict:
        counts = {"inter_v": inter, "union_v": union, "inter_b": 1000, "union_b": 1000}
        return {"name": name, "true_positives": tp, "n_predicted": tp + fp, "n_truth": tp + fn,
                "pixel_counts": counts, "outline_pixel_counts": counts}

    report = {"per_scene": [row("coco/a", 2, 0, 0, 90, 100), row("coco/b", 1, 1, 1, 10, 100),
                            row("coco/c", 0, 0, 2, 0, 50), row("hrsid/x", 5, 0, 0, 1, 1)]}
    found = {"pairs": [{"test": "coco/a", "other": "coco/z", "other_split": "train", "twin": True},
                       {"test": "coco/b", "other": "coco/y", "other_split": "val", "twin": True},
                       {"test": "coco/c", "other": "coco/w", "other_split": "train", "twin": False}]}
    got = by_twin(report, found, draws=50)
    assert got["all"]["samples"] == 3 and got["all"]["ships"] == 6
    assert got["twin_in_training"]["samples"] == 1 and got["twin_in_training"]["f1"] == 1.0
    assert got["twin_in_training"]["vessel_iou_outlines"] == 0.9
    none = got["no_twin_in_training"]
    assert none["samples"] == 2 and none["ships"] == 4 and abs(none["vessel_iou_mask"] - 10 / 150) < 1e-12
    assert none["f1"] == 2 * 1 / (2 * 1 + 1 + 3)


def test_a_flipped_or_turned_copy_is_found_only_in_its_orientation() -> None:
    rng = np.random.default_rng(11)
    scene = sar_scene(rng, (200, 240), ships=5)
    chips = {0: as_counts(scene[0:140, 0:180]),  # test
             1: as_counts(np.rot90(scene[50:200, 40:240], 1) * 0.9 + 5),  # train: a crop of 0's scene, turned
             2: as_counts(sar_scene(np.random.default_rng(12), (150, 170)))}  # train, distinct
    source = {i: SimpleNamespace(name=f"chip{i}", read=lambda c=c: c[None]) for i, c in chips.items()}
    split = {"test": [0], "train": [1, 2], "val": [], "names": {str(i): f"chip{i}" for i in chips}}
    as_stored = find_twins(split, source, coarse=4, log=lambda *_: None)
    assert as_stored["summary"]["test_with_twin"] == 0
    turned = find_twins(split, source, coarse=4, orientations=("identity", "rot90", "flip_rows"), log=lambda *_: None)
    twins = [(p["other"], p["orientation"]) for p in turned["pairs"] if p["twin"]]
    assert twins == [("chip1", "rot90")], twins
    assert turned["per_test"]["chip0"]["best"]["orientation"] == "rot90"
    assert not any(p["caught_by_corner_rule"] for p in turned["pairs"])
    with pytest.raises(ValueError, match="orientation must be one of"):
        find_twins(split, source, orientations=("mirror",), log=lambda *_: None)
