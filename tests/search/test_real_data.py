"""The search trains and validates on a real data set through flightsim's loaders, never on its test split."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from search.candidate import evaluate_candidate
from search.dataset import prepare_data, split_source
from search.space import BlockGene, Genome


def _hrsid_mini(root: Path, n: int, size: int = 192, seed: int = 0) -> None:
    """``n`` SAR-like JPEGs with two bright ships each, in the hrsid-mini layout (sets made with the
    same ``seed`` hold the same images: a source list of them would be one set several times)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        r, c = rng.integers(10, size - 40, 2)
        mask[r:r + 6, c:c + 30] = 1
        mask[c:c + 24, r:r + 5] = 1
        img = np.clip(rng.normal(40, 12, (size, size)) + 170 * mask, 0, 255).astype(np.uint8)
        for path, pixels, driver in ((root / "images" / f"p{i}.jpg", np.stack([img] * 3), "JPEG"),
                                     (root / "masks" / f"p{i}.png", np.stack([0 * mask, 255 * mask, 0 * mask]), "PNG")):
            with rasterio.open(path, "w", driver=driver, height=size, width=size, count=3, dtype="uint8") as dst:
                dst.write(pixels)


def test_split_is_seeded_disjoint_and_refuses_too_few_samples() -> None:
    data = {"split_seed": 0, "val_fraction": 0.2, "test_fraction": 0.2}
    train, val, test = split_source(24, data)
    assert (len(train), len(val), len(test)) == (14, 5, 5)
    assert sorted(train + val + test) == list(range(24)) and split_source(24, data) == (train, val, test)
    assert split_source(24, {**data, "split_seed": 1}) != (train, val, test)
    with pytest.raises(ValueError, match="test_fraction"):
        split_source(2, data)


@pytest.mark.slow
def test_a_candidate_trains_and_is_scored_on_a_real_source(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    _hrsid_mini(tmp_path / "set", 5)
    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "source": f"hrsid-mini:{tmp_path / 'set'}"}}
    data = prepare_data(cfg, tmp_path / "data")
    split = json.loads((tmp_path / "data" / "split.json").read_text())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (3, 1, 1)
    assert not set(split["test"]) & set(data.train_seeds + data.val_seeds)
    assert prepare_data(cfg, tmp_path / "data") == data  # idempotent: the same split and normalisation

    record = evaluate_candidate(Genome((BlockGene("conv", 8), BlockGene("conv", 8, 2))), cfg, data, tmp_path / "out")
    assert record["status"] == "ok", record.get("traceback")
    dev = record["device_metrics"]
    assert dev["source"].startswith("hrsid-mini:/") and dev["val_seeds"] == split["val"]
    assert dev["tiles_lost"] == 0 and 0.0 <= dev["miou"] <= 1.0 and dev["device"] == "myriadx-emu"
    assert record["training"]["train_samples"] == split["train"]
    report = json.loads((tmp_path / "out" / "candidates" / record["key"] / "hil" / "val" / "report.json").read_text())
    assert report["scene"]["val"] == split["val"]
    # scored as the in-process scorer scores: the mean of each sample's figures (pooled kept beside)
    assert dev["miou"] == pytest.approx(np.mean([s["miou"] for s in report["per_scene"]]))
    assert dev["pooled"]["miou"] == pytest.approx(report["miou"])


def test_source_roles_hold_a_data_set_out_whole(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """Leave-one-set-out: a set with role "test" is all test, one with "train" all training, and
    the others keep their seeded split; bad role lists are refused with the valid choices."""
    for seed, (name, n) in enumerate((("a", 5), ("b", 2), ("c", 3))):
        _hrsid_mini(tmp_path / name, n, size=96, seed=seed)  # three data sets: no image in two of them
    sources = [f"hrsid-mini:{tmp_path / n}" for n in "abc"]
    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "source": sources, "source_roles": ["split", "train", "test"],
                                "source_weights": [1.0, 1.0, 1.0]}}
    data = prepare_data(cfg, tmp_path / "data")
    split = json.loads((tmp_path / "data" / "split.json").read_text())
    assert split["roles"] == ["split", "train", "test"]
    assert set(split["test"]) >= {7, 8, 9} and not set(split["test"]) & set(data.train_seeds + data.val_seeds)
    assert {5, 6} <= set(data.train_seeds) and len([i for i in split["test"] if i < 5]) == 1
    assert set(data.val_seeds) < set(range(5))
    sampler_groups = set(data.train_groups)
    assert sampler_groups == {0, 1}  # the held-out set gives no training sample
    from search.dataset import make_sampler

    make_sampler(cfg, data, np.random.default_rng(0)).batch(2)  # a weight for a set with no sample is fine
    for roles, match in ((["split", "train"], "3 data sets"), (["split", "train", "holdout"], "valid: ")):
        with pytest.raises(ValueError, match=match):
            prepare_data({**cfg, "data": {**cfg["data"], "source_roles": roles}}, tmp_path / "bad")
    with pytest.raises(ValueError, match="no validation sample"):
        prepare_data({**cfg, "data": {**cfg["data"], "source_roles": ["train", "train", "test"]}}, tmp_path / "bad2")


def test_a_sample_without_the_model_bands_is_refused(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    _hrsid_mini(tmp_path / "set", 5)
    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "source": f"hrsid-mini:{tmp_path / 'set'}"},
           "model": {**tiny_cfg["model"], "in_channels": 4}}
    with pytest.raises(ValueError, match="model.in_channels"):
        prepare_data(cfg, tmp_path / "data")


def test_a_sample_storing_the_model_bands_in_another_order_is_trained_in_the_models_order(
        tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """A GeoTIFF stored blue, green, red (a Sentinel-2 stack: B2, B3, B4) reaches the payload reordered
    by name to the model's red, green, blue (runtime.bands.adapt_bands, the rig's rule); training must
    see it in that order too, and the normalisation recorded per model band must be that band's."""
    from flightsim.sources import open_source
    from runtime.bands import adapt_bands
    from search.dataset import split_arrays

    images, annotations = [], []
    (tmp_path / "set").mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        counts = np.stack([np.full((96, 96), v, np.uint8) for v in (20, 90, 200)])  # blue, green, red
        counts = counts + rng.integers(0, 10, counts.shape).astype(np.uint8)
        counts[:, 40:46, 30:60] = 250
        with rasterio.open(tmp_path / "set" / f"s{i}.tif", "w", driver="GTiff", height=96, width=96, count=3,
                           dtype="uint8") as dst:
            dst.write(counts)
            for band, name in enumerate(("blue", "green", "red"), start=1):
                dst.set_band_description(band, name)
        images.append({"id": i, "file_name": f"s{i}.tif", "height": 96, "width": 96})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [30, 40, 30, 6], "iscrowd": 0})
    (tmp_path / "set" / "ships.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "ship"}]}))
    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "source": f"coco:{tmp_path / 'set'}"}}
    data = prepare_data(cfg, tmp_path / "data")
    assert cfg["export"]["bands"] == ["red", "green", "blue"]
    assert data.norm.mean[0] > 150 > 50 > data.norm.mean[2]  # red's counts, then blue's
    source = open_source(cfg["data"]["source"])
    for scene in split_arrays(data, "train") + split_arrays(data, "val"):
        sample = source[scene.seed]
        index, _ = adapt_bands(sample.bands, cfg["export"]["bands"])
        assert index is not None
        np.testing.assert_array_equal(scene.image, sample.read()[index])  # what the rig sends the payload


SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "ssdd" / "images").is_dir(), reason="../shared/data/ssdd is not beside the project")
def test_the_sar_sets_of_configs_sar_load_and_split_set_by_set() -> None:
    """The real SAR sets as configs/sar.toml names them (a few chips each): one concatenated data
    set whose every part keeps held-out test samples of its own, with what it was trained for."""
    from search.config import load_config

    sar = load_config(Path(__file__).resolve().parents[2] / "configs" / "sar.toml")
    specs = [s.replace("../shared/data", str(SHARED)) for s in sar["data"]["source"]]
    assert sar["data"]["modality"] == "sar" and len(specs) == 3
    from flightsim.sources import Concat, open_source

    source = open_source(specs, limit=4)
    assert isinstance(source, Concat) and len(source) == 4 + 4 + 4
    sample = source[0].load()
    assert sample.count == 3 and sample.mask is not None and sample.mask.any() and sample.name.startswith("coco/")
    # Each part is split on its own: 4 samples give 1 test, 1 validation and 2 training samples each.
    parts = [split_source(4, {"split_seed": 0, "val_fraction": 0.25, "test_fraction": 0.25}) for _ in specs]
    assert all((len(tr), len(va), len(te)) == (2, 1, 1) for tr, va, te in parts)
    from search.dataset import source_spec

    assert all(Path(s.split(":", 1)[1]).is_absolute() for s in source_spec(specs))


def test_leave_one_out_folds_hold_out_one_set_and_validate_on_the_next() -> None:
    """scripts/leave_one_out.py: fold K tests on set K; with a rotation the next set validates and
    the rest of the rotation trains; sets outside the rotation keep their configured role."""
    from scripts.leave_one_out import fold_config

    cfg = {"data": {"source": ["synthetic", "a", "b", "c"], "source_roles": ["train", "train", "train", "val"]}}
    assert fold_config(cfg, 1)["data"]["source_roles"] == ["train", "test", "train", "val"]
    rotation = [1, 2, 3]
    assert fold_config(cfg, 3, rotation)["data"]["source_roles"] == ["train", "val", "train", "test"]
    assert fold_config(cfg, 1, rotation)["data"]["source_roles"] == ["train", "test", "val", "train"]
    assert fold_config(cfg, None)["data"]["source_roles"] == ["train", "train", "train", "val"]
    with pytest.raises(ValueError, match="0..3"):
        fold_config(cfg, 4)


def _with_land_masks(tmp_path: Path, tiny_cfg: dict[str, Any]) -> dict[str, Any]:
    """Five hrsid-mini tiles, four of them with a sea/land mask (a strip of land on the left), and
    the config that trains a land head on them with weight 1."""
    _hrsid_mini(tmp_path / "set", 5)
    (tmp_path / "sealand").mkdir()
    for i in range(4):  # one sample has no mask: left out of the land loss
        sea = np.full((192, 192), 255, np.uint8)
        sea[:, :40] = 0
        with rasterio.open(tmp_path / "sealand" / f"p{i}.png", "w", driver="PNG", height=192, width=192,
                           count=1, dtype="uint8") as dst:
            dst.write(sea[None])
    return {**tiny_cfg, "data": {**tiny_cfg["data"], "source": f"hrsid-mini:{tmp_path / 'set'}",
                                 "land_masks": str(tmp_path / "sealand")},
            "train": {**tiny_cfg["train"], "land_weight": 1.0}}


@pytest.mark.slow
def test_land_masks_teach_a_training_only_land_head(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """[data] land_masks reads <stem>.png sea/land masks (0 = land) into the training arrays, and
    [train] land_weight trains a land head beside the vessel head that the exported network lacks."""
    import torch

    from search.train import fit
    from search.dataset import make_sampler, split_arrays
    from search.network import GenomeNet
    from search.train import land_loss

    cfg = _with_land_masks(tmp_path, tiny_cfg)
    with pytest.raises(ValueError, match="land_masks"):
        prepare_data({**cfg, "data": {**cfg["data"], "land_masks": str(tmp_path / "nowhere")}}, tmp_path / "bad")
    data = prepare_data(cfg, tmp_path / "data")
    train = split_arrays(data, "train")
    names = json.loads((tmp_path / "data" / "split.json").read_text())["names"]
    for scene in train:
        if names[str(scene.seed)].endswith("p4"):
            assert scene.land is None
        else:
            assert scene.land is not None and scene.land[:, :40].all() and not scene.land[:, 40:].any()

    genome = Genome((BlockGene("conv", 8), BlockGene("conv", 8, 2)))
    net = GenomeNet(genome)
    log = fit(net, make_sampler(cfg, data, np.random.default_rng(0)), cfg, 1, 1e-3, torch.device("cpu"))
    assert log["land_weight"] == 1.0 and isinstance(net.land_head, torch.nn.Conv2d)
    assert net(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)  # the flight network: one output
    record = evaluate_candidate(genome, cfg, data, tmp_path / "out")  # trains both phases, exports, scores
    assert record["status"] == "ok", record.get("traceback")
    assert record["training"]["fp32"]["land_weight"] == 1.0
    from scripts.land_gate_quality import measure

    with pytest.raises(ValueError, match="no land gate"):  # nothing to read back: the head was not flown
        measure(tmp_path / "out" / "candidates" / genome.key / "bundle", tmp_path / "data", "train")
    from scripts.shift_gate import shift_gate

    with pytest.raises(ValueError, match="no land gate"):  # and no gate to shift
        shift_gate(tmp_path / "out" / "candidates" / genome.key / "bundle", 1.0, tmp_path / "shifted", "CPU")
    # the loss leaves unknown pixels out, and is zero when no pixel is known
    logits = torch.zeros(1, 1, 2, 2)
    assert float(land_loss(logits, torch.full((1, 1, 2, 2), 255.0), 255)) == 0.0
    assert float(land_loss(logits, torch.tensor([[[[1.0, 255.0], [255.0, 255.0]]]]), 255)) == pytest.approx(np.log(2))
    # [train] land_focus weights each known pixel by 1 + focus, normalised: equal focus changes
    # nothing, and a focused pixel pulls the mean towards its own cross-entropy
    land = torch.tensor([[[[1.0, 0.0], [255.0, 255.0]]]])
    logits = torch.tensor([[[[2.0, 2.0], [0.0, 0.0]]]])
    ce_land, ce_sea = float(torch.nn.functional.softplus(torch.tensor(-2.0))), float(torch.nn.functional.softplus(torch.tensor(2.0)))
    assert float(land_loss(logits, land, 255, torch.full_like(logits, 3.0))) == pytest.approx((ce_land + ce_sea) / 2)
    focus = torch.tensor([[[[0.0, 3.0], [9.0, 9.0]]]])  # the sea pixel weighs 4, the land one 1; unknown ones nothing
    assert float(land_loss(logits, land, 255, focus)) == pytest.approx((ce_land + 4 * ce_sea) / 5)
    with pytest.raises(ValueError, match="land_focus"):
        prepare_data({**cfg, "train": {**cfg["train"], "land_focus": -1.0}}, tmp_path / "bad2")


# Extra parameters over the plain network of 8 decoder channels: a 1x1 head with bias is 8 + 1; the
# wide gate's two 3x3 conv-bn layers on the cell grid are 8*16*9 + 2*16 and 16*16*9 + 2*16; the
# texture gate's first one also reads the input's mean and mean square of 3 bands: 6 more channels.
@pytest.mark.slow
@pytest.mark.parametrize("gate, gate_loss, extra", [
    ("local", "vessel", 9), ("context", "vessel", 18),
    ("wide", "vessel", 9 + (8 * 16 * 9 + 32) + (16 * 16 * 9 + 32) + 17),
    ("wide_texture", "flown", 9 + (14 * 16 * 9 + 32) + (16 * 16 * 9 + 32) + 17)])
def test_a_land_gate_flies_the_sea_head_and_masks_land_on_board(tmp_path: Path, tiny_cfg: dict[str, Any],
                                                                 gate: str, gate_loss: str, extra: int) -> None:
    """[train] land_gate: the network's one output is its vessel probability times its own sea
    probability, the sea head is taught by the land masks (and, with ``gate_loss = "flown"``, the
    vessel loss is on that product), and the candidate exports, passes the target check (opsets of
    the 2022.3 toolkit included) and records the extra parameters; without masks to learn from, or
    with an unknown gate or gate loss, it is refused."""
    import torch

    from search.train import fit
    from search.dataset import make_sampler
    from search.network import GenomeNet
    from search.space import count_parameters

    cfg = _with_land_masks(tmp_path, tiny_cfg)
    gated = {**cfg, "train": {**cfg["train"], "land_gate": gate, "gate_loss": gate_loss}}
    for bad in ({**gated, "train": {**gated["train"], "land_weight": 0.0}},
                {**gated, "data": {**gated["data"], "land_masks": ""}},
                {**gated, "train": {**gated["train"], "land_gate": "coastline"}}):
        with pytest.raises(ValueError, match="land_gate"):
            prepare_data(bad, tmp_path / "bad")
    with pytest.raises(ValueError, match="gate_loss.*valid"):
        prepare_data({**gated, "train": {**gated["train"], "gate_loss": "land"}}, tmp_path / "bad")
    data = prepare_data(gated, tmp_path / "data")
    genome = Genome((BlockGene("conv", 8), BlockGene("conv", 8, 2)))
    net = GenomeNet(genome, land_gate=gate)
    assert count_parameters(genome, land_gate=gate) == sum(p.numel() for p in net.parameters()) \
        == count_parameters(genome) + extra
    with pytest.raises(ValueError, match="land_gate"):  # a sampler without masks cannot teach the gate
        no_masks = {**gated, "data": {**gated["data"], "land_masks": ""}}
        fit(GenomeNet(genome, land_gate=gate), make_sampler(no_masks, prepare_data(
            {**no_masks, "train": {**no_masks["train"], "land_gate": "none"}}, tmp_path / "plain"),
            np.random.default_rng(0)), gated, 1, 1e-3, torch.device("cpu"))
    log = fit(net, make_sampler(gated, data, np.random.default_rng(0)), gated, 2, 3e-3, torch.device("cpu"))
    assert log["land_weight"] == 1.0 and not hasattr(net, "land_head")  # the sea head learnt it
    heads = []
    for focus in (0.0, 0.0, 4.0):  # [train] land_focus reaches the gate's loss: same seed, another sea head
        torch.manual_seed(0)
        twin = GenomeNet(genome, land_gate=gate)
        fit(twin, make_sampler(gated, data, np.random.default_rng(0)),
            {**gated, "train": {**gated["train"], "land_focus": focus}}, 1, 3e-3, torch.device("cpu"))
        heads.append(twin.sea_head.conv.weight.detach().clone())
    assert torch.equal(heads[0], heads[1]) and not torch.equal(heads[1], heads[2])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = net.features(x)
        expected = torch.sigmoid(net.head(features)) * torch.sigmoid(net.sea_logits(features, x))
        torch.testing.assert_close(net(x), expected)
        # the logit the "flown" loss trains is that product's
        flown = net.flown_logits(net.head(features), net.sea_logits(features, x))
        torch.testing.assert_close(torch.sigmoid(flown), expected, atol=1e-6, rtol=1e-4)
        # [export] sea_shift lowers the sea logit by exactly that much, in the head's bias
        shifted = copy.deepcopy(net)
        shifted.shift_sea(1.5)
        torch.testing.assert_close(shifted.sea_logits(features, x), net.sea_logits(features, x) - 1.5)
    with pytest.raises(ValueError, match="sea_shift.*land gate"):
        GenomeNet(genome).shift_sea(1.0)
    record = evaluate_candidate(genome, {**gated, "export": {**gated["export"], "sea_shift": 0.5}}, data, tmp_path / "out")
    assert record["status"] == "ok", record.get("traceback")
    assert record["parameters"] == count_parameters(genome, land_gate=gate)
    assert record["training"]["sea_shift"] == 0.5  # applied to the network exported, and recorded
    manifest = json.loads((tmp_path / "out" / "candidates" / genome.key / "bundle" / "manifest.json").read_text())
    assert "land gate" in manifest["output"]["meaning"] and manifest["parameters"] == record["parameters"]
    # scripts/land_gate_quality.py reads the gate back out of the IR: its budgets add up to the
    # truth, and removing the hand-drawn land leaves no false pixel on land
    from scripts.land_gate_quality import measure
    from search.dataset import split_arrays

    quality = measure(tmp_path / "out" / "candidates" / genome.key / "bundle", tmp_path / "data", "train",
                      sea_shifts=(0.0, 50.0))
    truth_px = sum(int((s.mask > 0).sum()) for s in split_arrays(data, "train") if s.land is not None)
    assert 0.0 <= quality["land_pixels_called_land"] <= 1.0 and quality["samples"] >= 1
    for name, b in quality["budgets"].items():
        assert b["right"] + b["missed"] == truth_px
        if name.endswith("land removed"):
            assert b["false_on_land"] == 0
    where = quality["where_on_land"]  # every false land pixel of the flown output is placed once
    assert where["false_pixels"] == sum(where["by_distance_to_sea_px"].values()) == quality["budgets"]["flown"]["false_on_land"]
    assert 0.0 <= where["share_in_the_5_samples_with_most"] <= where["share_in_the_10_samples_with_most"] <= 1.0
    # no shift gives the flown figures back; a huge one calls everything land and finds nothing
    none, huge = quality["sea_shifts"]
    assert none["land_pixels_called_land"] == pytest.approx(quality["land_pixels_called_land"])
    assert abs(none["flown"]["right"] - quality["budgets"]["flown"]["right"]) <= truth_px * 0.01
    assert huge["land_pixels_called_land"] == 1.0 and huge["flown"]["right"] == 0
    # scripts/shift_gate.py: the same bundle with the sea logit lowered in its IR flies
    # vessel x sigmoid(logit(sea) - shift), and its golden tile is measured again so it loads
    from scipy.special import expit, logit

    from runtime.bundle import read_bundle
    from scripts.land_gate_quality import gated_outputs
    from scripts.shift_gate import shift_gate

    source = tmp_path / "out" / "candidates" / genome.key / "bundle"
    shifted_bundle = shift_gate(source, 1.0, tmp_path / "shifted", "CPU")
    assert shifted_bundle.manifest["derived_from"]["sha256"] == read_bundle(source).id and "golden" in shifted_bundle.manifest
    tile = np.random.default_rng(0).normal(size=shifted_bundle.manifest["input"]["shape"]).astype(np.float32)
    outs = [gated_outputs(b.files["model.xml"], b.files["model.bin"], "").create_infer_request().infer([tile])
            for b in (read_bundle(source), shifted_bundle)]
    flown, vessel, sea = (outs[0][i] for i in range(3))
    np.testing.assert_allclose(outs[1][0], vessel * expit(logit(np.clip(sea, 1e-7, 1 - 1e-7)) - 1.0), atol=1e-4)
    assert not np.allclose(outs[1][0], flown, atol=1e-4)
