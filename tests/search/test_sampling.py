"""Patch sampling for real data: hard negatives, photometric and scale augmentation, source weights,
and a search over several data sets split one by one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.data import LAND_UNKNOWN, Normalization, PatchSampler, SamplingOptions, SceneArrays

NORM = Normalization((0.0,), (1.0,))


def _scene(seed: int, value: int = 20, size: int = 96) -> SceneArrays:
    image = np.full((1, size, size), value, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[10:14, 10:30] = 1
    image[0, 10:14, 10:30] = 200
    image[0, 70:80, 60:90] = 250  # bright clutter, not a vessel
    return SceneArrays(seed, image, mask)


def test_hard_negatives_are_centred_on_bright_clutter() -> None:
    opts = SamplingOptions(vessel_fraction=0.0, hard_negative_fraction=1.0, augment=())
    sampler = PatchSampler([_scene(0)], NORM, 32, opts, np.random.default_rng(0))
    images, masks = sampler.batch(20)
    assert all((img == 250).any() for img in images) and masks.sum() < 20 * 80  # clutter in every patch


def test_photometric_augmentation_changes_counts_not_masks() -> None:
    for seed in range(6):  # the first patch of equally seeded samplers: the same place, other counts
        plain = PatchSampler([_scene(0)], NORM, 32, SamplingOptions(1.0, augment=()), np.random.default_rng(seed))
        aug = PatchSampler([_scene(0)], NORM, 32, SamplingOptions(1.0, augment=("gain", "contrast", "speckle")),
                           np.random.default_rng(seed))
        (a, ma), (b, mb) = plain.batch(1), aug.batch(1)
        np.testing.assert_array_equal(ma, mb)
        assert not np.array_equal(a, b) and b.min() >= 0 and b.max() <= 255


def test_gain_on_a_dark_patch_of_a_uint16_scene_is_not_clipped_at_the_8_bit_top() -> None:
    """The counts' range is the scene's type, not the patch's maximum: a uint16 scene whose patch is
    dark (all 240) was clipped at 255 under gain in [0.7, 1.3] in about half the draws."""
    image = np.full((1, 64, 64), 240, np.uint16)
    scene = SceneArrays(0, image, np.zeros((64, 64), np.uint8))
    tops = []
    for seed in range(40):
        sampler = PatchSampler([scene], NORM, 32, SamplingOptions(0.0, augment=("gain",)), np.random.default_rng(seed))
        tops.append(float(sampler.batch(1)[0].max()))
    assert max(tops) > 255 and not any(t == 255.0 for t in tops)


def test_scale_jitter_keeps_the_patch_size_and_a_binary_mask() -> None:
    sampler = PatchSampler([_scene(0)], NORM, 32, SamplingOptions(1.0, augment=("scale",)), np.random.default_rng(2))
    images, masks = sampler.batch(16)
    assert images.shape == (16, 1, 32, 32) and set(np.unique(masks)) <= {0.0, 1.0}
    vessel_px = masks.reshape(16, -1).sum(axis=1)
    assert len(set(vessel_px.tolist())) > 1  # the ship's size in the patch varies


def test_a_scene_smaller_than_the_patch_is_padded_as_the_runtime_pads_an_edge_tile() -> None:
    small = _scene(0, value=20, size=40)
    small = SceneArrays(0, small.image, small.mask, land=np.zeros((40, 40), np.uint8))
    norm = Normalization((20.0,), (10.0,))  # the sea's counts normalise to 0, the ship's to 18
    for augment in ((), ("scale",)):
        sampler = PatchSampler([small], norm, 64, SamplingOptions(1.0, augment=augment), np.random.default_rng(1))
        images, masks, lands = sampler.batch_with_land(8)
        assert images.shape == (8, 1, 64, 64) and (masks.reshape(8, -1).sum(axis=1) > 0).all()  # the ship in each
        assert set(np.unique(masks)) <= {0.0, 1.0}
        for image, land in zip(images[:, 0], lands[:, 0]):
            padded = land == LAND_UNKNOWN  # the padding: land unknown, image 0, never a vessel
            assert padded.any() and (image[padded] == 0).all() and (land[~padded] == 0).all()
    plain = PatchSampler([small], norm, 64, SamplingOptions(1.0, augment=()), np.random.default_rng(1))
    images, masks = plain.batch(4)
    np.testing.assert_array_equal(images[:, 0, :40, :40], norm.apply(small.image.astype(np.float32))[0][None].repeat(4, 0))
    assert not images[:, :, 40:].any() and not images[:, :, :, 40:].any() and not masks[:, :, 40:].any()


def test_source_weights_choose_the_data_set() -> None:
    scenes = [_scene(0, value=20), _scene(1, value=60), _scene(2, value=60)]
    opts = SamplingOptions(0.0, augment=(), group_weights=(1.0, 0.0))
    images, _ = PatchSampler(scenes, NORM, 16, opts, np.random.default_rng(3), groups=[0, 1, 1]).batch(30)
    assert not (images == 60).any()
    with pytest.raises(ValueError, match="source weights"):
        PatchSampler(scenes, NORM, 16, SamplingOptions(0.0, group_weights=(1.0,)), np.random.default_rng(3),
                     groups=[0, 1, 1])


def test_bad_options_list_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="speckle"):
        SamplingOptions(augment=("blur",))
    with pytest.raises(ValueError, match="sum to at most 1"):
        SamplingOptions(vessel_fraction=0.8, hard_negative_fraction=0.3)


def test_a_list_of_sources_is_split_set_by_set(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    from flightsim.sources import Concat, open_source
    from search.dataset import prepare_data
    from tests.search.test_real_data import _hrsid_mini

    _hrsid_mini(tmp_path / "a", 5)
    _hrsid_mini(tmp_path / "b", 10)
    specs = [f"hrsid-mini:{tmp_path / 'a'}", f"hrsid-mini:{tmp_path / 'b'}"]
    source = open_source(specs)
    assert isinstance(source, Concat) and len(source) == 15 and source.part_of(5) == 1
    assert (source[0].name, source[5].name) == ("hrsid-mini.1/p0", "hrsid-mini.2/p0")  # a kind twice: unique names
    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "source": specs}}
    data = prepare_data(cfg, tmp_path / "data")
    split = json.loads((tmp_path / "data" / "split.json").read_text())
    # Each set keeps its own test samples: 1 of the first 5, 2 of the next 10.
    assert [sum(1 for i in split["test"] if (i >= 5) == part) for part in (False, True)] == [1, 2]
    assert not set(split["test"]) & set(data.train_seeds + data.val_seeds)
    assert data.train_groups == tuple(int(i >= 5) for i in data.train_seeds)


def test_a_log_scale_normalisation_is_what_the_payload_applies() -> None:
    """[data] normalization_scale = "log": log(1 + counts), then the training counts' mean and std
    on that scale; training and the runtime's Preprocessor give the very same numbers, the manifest
    records the scale, and a bundle cannot ask for it to happen in the IR."""
    from runtime.bundle import BundleError, validate_manifest
    from runtime.preprocess import Preprocessor
    from search.data import SceneArrays, estimate_normalization
    from search.input_types import input_manifest

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 256, (3, 40, 40)).astype(np.uint8)
    scenes = [SceneArrays(0, counts, np.zeros((40, 40), np.uint8))]
    norm = estimate_normalization(scenes, "log")
    assert norm.scale == "log" and norm.mean[0] == pytest.approx(np.log1p(counts[0].astype(np.float64)).mean(), abs=1e-4)
    manifest_input = {"normalization": norm.to_manifest(), "dtype": "float32"}
    assert manifest_input["normalization"]["scale"] == "log"
    batch, valid = Preprocessor(manifest_input, (1, 3, 48, 48))(counts, {})
    assert valid == (40, 40)
    assert np.array_equal(batch[0, :, :40, :40], norm.apply(counts))  # bit for bit
    assert "scale" not in estimate_normalization(scenes).to_manifest()  # linear manifests unchanged
    with pytest.raises(ValueError, match="valid: \\['linear', 'log'\\]"):
        estimate_normalization(scenes, "sqrt")
    with pytest.raises(ValueError, match="\\['float32'\\]"):
        input_manifest({**manifest_input, "shape": [1, 3, 48, 48]}, "uint8")
    bundle = {"format": "vessel-bundle/1", "name": "m", "files": {},
              "input": {"shape": [1, 3, 48, 48], "layout": "NCHW", "dtype": "float32",
                        "normalization": {**norm.to_manifest(), "where": "ir"}},
              "output": {"threshold": 0.5}}
    with pytest.raises(BundleError, match="host only"):
        validate_manifest(bundle)
    with pytest.raises(BundleError, match="valid: \\['linear', 'log'\\]"):
        validate_manifest({**bundle, "input": {**bundle["input"], "normalization": {**norm.to_manifest(),
                                                                                  "scale": "sqrt"}}})


def test_land_patches_are_cut_and_augmented_with_their_image() -> None:
    scene = _scene(0)
    land = (scene.image[0] == 250).astype(np.uint8)  # land where the bright clutter is
    opts = SamplingOptions(vessel_fraction=0.3, hard_negative_fraction=0.5, augment=("flip", "rot90", "scale"))
    sampler = PatchSampler([SceneArrays(0, scene.image, scene.mask, land)], NORM, 32, opts, np.random.default_rng(0))
    assert sampler.has_land
    images, masks, lands = sampler.batch_with_land(40)
    assert lands.shape == masks.shape and set(np.unique(lands)) == {0.0, 1.0}
    np.testing.assert_array_equal(lands[:, 0], (images[:, 0] == 250).astype(np.float32))  # same crop, same turns
    # A scene without a sea/land mask gives the unknown value, which the land loss leaves out.
    unknown = PatchSampler([scene], NORM, 32, opts, np.random.default_rng(0))
    assert not unknown.has_land and (unknown.batch_with_land(4)[2] == LAND_UNKNOWN).all()
