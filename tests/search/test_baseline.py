"""The baseline: the hand-designed U-Net as a fixed genome, trained and exported on the candidates' road."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.bundle import read_bundle, validate_manifest
from search.ablate import parse_genome
from search.baseline import train_baseline
from search.config import load_config
from search.dataset import seed_ranges
from search.export import MAX_OPSET, compile_ir
from search.network import GenomeNet
from search.space import Genome, count_parameters, unet_genome

ROOT = Path(__file__).resolve().parents[2]

# One short epoch on a few small scenes: enough to run every stage, not to learn anything.
TINY = """
[data]
train_scenes = 2
train_scene_size = 256
val_scenes = 1
val_scene_size = 256
[train]
epochs = 1
steps_per_epoch = 2
batch = 4
patch = 64
"""


def default_genome() -> Genome:
    cfg = load_config()["model"]
    return unet_genome(cfg["widths"], cfg["in_channels"])


def test_default_network_is_within_parameter_budget() -> None:
    n = count_parameters(default_genome())
    assert 30_000 <= n <= load_config()["space"]["max_parameters"]
    assert n == sum(p.numel() for p in GenomeNet(default_genome()).parameters())


def test_oversized_network_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "big.toml"
    config.write_text("[model]\nwidths = [64, 128, 256]\n")
    with pytest.raises(ValueError, match="budget"):
        train_baseline(tmp_path / "out", config_path=config, progress=False)


def test_the_baseline_budget_counts_the_land_gate_it_is_trained_with(tmp_path: Path) -> None:
    """The baseline was held to [space] max_parameters without its [train] land_gate, so a U-Net of
    96,809 parameters trained with the wide gate (101,515 once built) passed a budget of 100,000."""
    widths = [16, 24, 36, 36]
    assert count_parameters(unet_genome(widths)) <= 100_000 < count_parameters(unet_genome(widths), "wide") \
        == sum(p.numel() for p in GenomeNet(unet_genome(widths), "wide").parameters())
    config = tmp_path / "gated.toml"
    config.write_text(f"[model]\nwidths = {widths}\n[train]\nland_gate = \"wide\"\nland_weight = 1.0\n"
                      f"[data]\nland_masks = \"masks\"\n[space]\nmax_parameters = 100000\n")
    with pytest.raises(ValueError, match="101515 parameters with land gate 'wide'; the budget"):
        train_baseline(tmp_path / "out", config_path=config, progress=False)


def test_network_is_fully_convolutional() -> None:
    model = GenomeNet(default_genome()).eval()
    with torch.no_grad():
        for h, w in ((64, 64), (128, 96), (256, 256)):
            y = model(torch.zeros(2, 3, h, w))
            assert y.shape == (2, 1, h, w)
            assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_the_shipped_default_model_is_a_genome_the_search_tools_take() -> None:
    """Issue 11: models/default's genome ({"family": "unet", ...}) reads as the blocks-U-Net genome
    the baseline is now trained as, with the bundle's own parameter count, so `search ablate
    --genome models/default/manifest.json` takes it."""
    manifest = ROOT / "models" / "default" / "manifest.json"
    genome = parse_genome(str(manifest), load_config())
    assert genome == default_genome()
    assert count_parameters(genome) == read_bundle(manifest.parent).manifest["parameters"]


def test_seed_ranges_refuse_overlap_and_reserved_seeds() -> None:
    data = load_config()["data"]
    train, val = seed_ranges(data)
    assert min(train) >= 1000 and not set(train) & set(val) and 7 not in train + val
    with pytest.raises(ValueError, match="overlap"):
        seed_ranges({**data, "val_seed_start": data["train_seed_start"]})
    with pytest.raises(ValueError, match="min_seed"):
        seed_ranges({**data, "val_seed_start": 5})


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """Train for one tiny epoch and export; returns the bundle directory and the torch model."""
    tmp = tmp_path_factory.mktemp("tiny")
    config = tmp / "tiny.toml"
    config.write_text(TINY)
    run = train_baseline(tmp / "bundle", seed=3, config_path=config, progress=False)
    return tmp / "bundle", run.model


def test_bundle_verifies_and_manifest_validates(tiny_bundle: tuple[Path, torch.nn.Module]) -> None:
    bundle = read_bundle(tiny_bundle[0])
    m = validate_manifest(bundle.manifest)
    assert m["input"]["shape"] == [1, 3, 256, 256]
    assert m["input"]["normalization"]["where"] == "host"
    assert m["output"]["threshold"] == 0.5 and m["output"]["activation"] == "sigmoid"
    assert m["numerics"] == {"weights": "fp16", "trained_under": "fp32"}
    assert m["parameters"] == sum(p.numel() for p in tiny_bundle[1].parameters())
    assert m["genome"]["family"] == "blocks-unet" and Genome.from_dict(m["genome"]) == default_genome()
    assert 0.0 <= m["metrics"]["val_vessel_iou"] <= 1.0
    assert "INFERENCE_PRECISION_HINT=f32" in m["metrics"]["measured_on"]
    assert m["training"]["aligned"] is None and m["training"]["epochs"] == 1
    assert min(m["metrics"]["val_seeds"]) >= 100


def test_ir_uses_no_op_newer_than_opset10(tiny_bundle: tuple[Path, torch.nn.Module]) -> None:
    bundle = read_bundle(tiny_bundle[0])
    root = ET.fromstring(bundle.files["model.xml"])
    versions = {layer.get("version") for layer in root.iter("layer")}
    numbers = [int(re.fullmatch(r"opset(\d+)", v).group(1)) for v in versions]  # type: ignore[union-attr]
    assert max(numbers) <= MAX_OPSET
    types = {layer.get("type") for layer in root.iter("layer")}
    assert not types & {"Interpolate", "ConvolutionBackpropData", "GroupConvolutionBackpropData"}
    assert bundle.manifest["opsets"] == sorted(versions)


def test_ir_compiles_and_agrees_with_torch(tiny_bundle: tuple[Path, torch.nn.Module]) -> None:
    bundle = read_bundle(tiny_bundle[0])
    compiled = compile_ir(bundle.files["model.xml"], bundle.files["model.bin"])
    x = np.random.default_rng(0).normal(size=(1, 3, 256, 256)).astype(np.float32)
    ir = compiled(x)[0]
    with torch.no_grad():
        ref = tiny_bundle[1].eval()(torch.from_numpy(x)).numpy()
    assert ir.shape == (1, 1, 256, 256)
    assert np.abs(ir - ref).max() < 1e-2


def test_cli_help() -> None:
    for args in ([], ["train-baseline"]):
        out = subprocess.run(
            [sys.executable, "-m", "search", *args, "--help"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert "usage" in out.stdout
