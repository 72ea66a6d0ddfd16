"""scripts/train_elsewhere.py: a pack carries the training arrays exactly (images as the files they
decode from), a network trained from it is the one training here gives, and it is finished here
through the candidate's own export and scoring."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from search.config import load_config
from search.dataset import prepare_data
from search.space import BlockGene, Genome
from search.train import train_genome
from tests.runtime.test_soak_scripts import load_script
from tests.search.conftest import TINY_SEARCH
from tests.search.test_real_data import _with_land_masks

GENOME = Genome((BlockGene("conv", 8), BlockGene("conv", 8, 2)))


@pytest.fixture()
def packed(tmp_path: Path) -> tuple[ModuleType, Path, Path]:
    """Five hrsid-mini tiles, four with a sea/land mask (the land loss on), packed with GENOME."""
    cfg = _with_land_masks(tmp_path, load_config())  # writes the tiles and the masks
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_SEARCH.replace("[data]\n", f'[data]\nsource = "{cfg["data"]["source"]}"\nmodality = "sar"\n'
                                                     f'land_masks = "{cfg["data"]["land_masks"]}"\n')
                      .replace("[train]\n", "[train]\nland_weight = 1.0\n"))
    (tmp_path / "genome.json").write_text(json.dumps(GENOME.to_dict()))
    script = load_script("train_elsewhere")
    assert script.main(["pack", "--config", str(config), "--genome", str(tmp_path / "genome.json"),
                        "--out", str(tmp_path / "pack")]) == 0
    return script, config, tmp_path


@pytest.mark.slow
def test_a_pack_trains_the_network_training_here_gives_and_is_finished_here(
        packed: tuple[ModuleType, Path, Path]) -> None:
    script, config, tmp = packed
    pack = tmp / "pack"
    assert not (pack / "data").exists(), "the full arrays must not travel with the pack"
    assert list((pack / script.FILES).iterdir()), "the JPEGs the images decode from travel instead"
    # the other machine: only the pack, moved elsewhere
    there = tmp / "elsewhere" / "pack"
    shutil.copytree(pack, there)
    assert script.main(["train", "--pack", str(there), "--seeds", "3", "--fp32-epochs", "1",
                        "--aligned-epochs", "1", "--out", str(tmp / "trained")]) == 0
    with np.load(there / "data" / "train.npz") as rebuilt, np.load(tmp / "pack.data" / "train.npz") as here:
        assert sorted(rebuilt.files) == sorted(here.files)
        assert any(name.startswith("land_") for name in here.files), "the land masks must travel too"
        for name in here.files:
            np.testing.assert_array_equal(rebuilt[name], here[name], err_msg=name)

    cfg = load_config(config)
    _, net, _ = train_genome(GENOME, cfg, prepare_data(cfg, tmp / "pack.data"), 3, 1, 1)
    saved = torch.load(next((tmp / "trained").glob("*_seed_3_1_1.pt")), weights_only=False)
    for name, value in net.state_dict().items():
        if not name.startswith("land_head."):
            torch.testing.assert_close(saved["state"][name], value, rtol=0, atol=0, msg=name)

    rows = script.finish(pack, tmp / "trained", tmp / "finished")
    assert [r["seed"] for r in rows] == [3] and rows[0]["epochs"] == [1, 1] and rows[0]["status"] == "ok"
    assert rows[0]["trained_under"] == "fp32 1 epochs, then fp16-myriadx-aligned 1 epochs"
    assert saved["log"]["fp32"]["land_weight"] == 1.0  # trained with the land loss, from the packed masks
    assert (tmp / "finished" / "study.json").is_file()
    assert set(rows[0]["pooled_val"]) >= {"vessel_iou", "f1"} and (Path(rows[0]["bundle"]) / "model.xml").is_file()


def test_an_image_that_decodes_otherwise_there_is_refused(packed: tuple[ModuleType, Path, Path]) -> None:
    script, _, tmp = packed
    image = sorted((tmp / "pack" / script.FILES).iterdir())[0]
    from PIL import Image

    with Image.open(image) as im:
        pixels = np.asarray(im).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(image.with_suffix(".png"))
    image.unlink()
    with pytest.raises(ValueError, match="differ from those packed"):
        script.train(tmp / "pack", [0], 1, 0, tmp / "trained")


@pytest.mark.slow
def test_finish_fits_each_network_its_own_second_stage(packed: tuple[ModuleType, Path, Path]) -> None:
    script, config, tmp = packed
    # trained long enough to find the bright ships and some clutter: candidates of both kinds
    script.train(tmp / "pack", [0], 40, 1, tmp / "trained")
    rows = script.finish(tmp / "pack", tmp / "trained", tmp / "finished", second_stage=True)
    stage = rows[0]["second_stage"]
    assert stage["kind"] == load_config(config)["export"]["discriminator_kind"] and 0.0 <= stage["val_f1"] <= 1.0
    manifest = json.loads((tmp / "finished" / rows[0]["run"] / "discriminated" / "manifest.json").read_text())
    assert manifest["output"]["discriminator"]["cut"] == stage["cut"]


def test_a_pack_made_again_is_unpacked_again_and_finish_refuses_an_empty_glob(
        packed: tuple[ModuleType, Path, Path]) -> None:
    script, config, tmp = packed
    pack = tmp / "pack"
    script._unpack(pack)
    assert script.main(["pack", "--config", str(config), "--out", str(pack)]) == 0
    assert not (pack / "data").exists(), "a pack made again keeps nothing of the last one"
    # arrays rebuilt from another pack (copied over this folder, say) are not trained on
    (pack / "data").mkdir()
    np.savez(pack / "data" / "train.npz", seeds=np.array([0]))
    (pack / "data" / script.UNPACKED_FROM).write_text("another pack")
    script._unpack(pack)
    with np.load(pack / "data" / "train.npz") as rebuilt, np.load(tmp / "pack.data" / "train.npz") as here:
        assert sorted(rebuilt.files) == sorted(here.files)
    with pytest.raises(ValueError, match="not a pack"):
        script.main(["pack", "--config", str(config), "--out", str(tmp)])
    with pytest.raises(ValueError, match="no nothing.pt"):
        script.finish(pack, tmp, tmp / "finished", only="nothing")
    # data prepared here that is no longer what was packed (here: another normalisation) is refused
    script.train(pack, [0], 1, 0, tmp / "trained")
    meta = script._read_meta(pack)
    meta["data"] = replace(meta["data"], norm=replace(meta["data"].norm, mean=(1.0,) * len(meta["data"].norm.mean)))
    (pack / script.META).write_bytes(pickle.dumps(meta))
    with pytest.raises(ValueError, match="no longer the data"):
        script.finish(pack, tmp / "trained", tmp / "finished")


def test_a_training_over_its_budget_is_refused_before_it_starts(packed: tuple[ModuleType, Path, Path]) -> None:
    script, _, tmp = packed
    cfg, genome, data = script._load_pack(tmp / "pack")
    one_epoch = script.projected_seconds(genome, cfg, data, 1, 0)
    assert one_epoch > 0
    with pytest.raises(ValueError, match="over --budget-s"):
        script.train(tmp / "pack", [0, 1], 100_000, 0, tmp / "trained", budget_s=60.0)
    assert not (tmp / "trained").exists(), "nothing trained, nothing written"
    script.train(tmp / "pack", [0], 1, 0, tmp / "trained", budget_s=3600.0)
    assert len(list((tmp / "trained").glob("*.pt"))) == 1


def test_finish_refuses_a_network_trained_from_another_pack(packed: tuple[ModuleType, Path, Path]) -> None:
    """A network carries the identity of the pack it was trained from; finished with another (or the
    pack made again from another genome or data), its record would claim that pack's data, seeds
    and normalisation (found by a review of 2026-12-04)."""
    script, config, tmp = packed
    script.train(tmp / "pack", [0], 1, 0, tmp / "trained")
    other = Genome((BlockGene("conv", 8), BlockGene("conv", 16, 2)))
    (tmp / "other.json").write_text(json.dumps(other.to_dict()))
    assert script.main(["pack", "--config", str(config), "--genome", str(tmp / "other.json"),
                        "--out", str(tmp / "pack2")]) == 0
    with pytest.raises(ValueError, match=r"were not trained from the pack in .*pack2"):
        script.finish(tmp / "pack2", tmp / "trained", tmp / "finished")


def test_a_pack_killed_half_way_is_made_again_in_place(packed: tuple[ModuleType, Path, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """pack removes the last pack's META first: killed while it wrote the images, it left a folder
    that the same command then refused as "not a pack" (found by a review of 2026-12-04)."""
    script, config, tmp = packed

    def killed(*args: object) -> None:
        raise KeyboardInterrupt("killed while writing the images")

    with monkeypatch.context() as patched:
        patched.setattr(script, "_compact", killed)
        with pytest.raises(KeyboardInterrupt):
            script.main(["pack", "--config", str(config), "--out", str(tmp / "pack")])
    assert script.main(["pack", "--config", str(config), "--out", str(tmp / "pack")]) == 0
    assert (tmp / "pack" / script.META).is_file() and not (tmp / "pack" / script.PACKING).exists()
