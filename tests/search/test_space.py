"""The genome: round trip, identity, constraints, and variation that never touches its parents."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
from torch import nn

from search.config import load_config
from search.export_ir import TargetCheckError, export_ir
from search.network import GenomeNet
from search.space import (BLOCK_KINDS, UPSAMPLINGS, BlockGene, Genome, SpaceConfig, count_parameters, crossover,
                          mutate, random_genome, violations)


@pytest.fixture()
def space() -> SpaceConfig:
    return SpaceConfig.from_dict(load_config()["space"], tile=256)


def test_round_trip_through_json_and_stable_key(space: SpaceConfig) -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = random_genome(rng, space)
        back = Genome.from_dict(json.loads(json.dumps(g.to_dict())))
        assert back == g and hash(back) == hash(g) and back.key == g.key
    a = Genome((BlockGene("conv", 16), BlockGene("se", 24, 2)))
    b = Genome((BlockGene("conv", 16), BlockGene("se", 24, 1)))
    assert a.key != b.key and len({a, b, Genome.from_dict(a.to_dict())}) == 2


def test_genome_is_immutable() -> None:
    g = Genome((BlockGene("conv", 16),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.upsample = "bilinear"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.blocks[0].width = 8  # type: ignore[misc]


def test_parameter_count_is_computed_without_weights_and_matches_torch(space: SpaceConfig) -> None:
    rng = np.random.default_rng(1)
    for _ in range(25):
        g = random_genome(rng, space)
        assert count_parameters(g) == sum(p.numel() for p in GenomeNet(g).parameters())


def test_violations_name_the_constraint(space: SpaceConfig) -> None:
    big = Genome(tuple(BlockGene("conv", 48, s) for s in (1, 2, 1, 2, 1, 1)))
    assert any("budget" in v for v in violations(big, space))
    assert any("block 0" in v for v in violations(Genome((BlockGene("conv", 16, 2), BlockGene("conv", 16))), space))
    assert any("valid" in v for v in violations(Genome((BlockGene("pool", 16), BlockGene("conv", 7))), space))
    seven = Genome(tuple(BlockGene("conv", 8) for _ in range(7)))
    assert any("blocks" in v for v in violations(seven, space))
    odd_tile = dataclasses.replace(space, tile=100)
    assert any("tile" in v for v in violations(Genome((BlockGene("conv", 8), BlockGene("conv", 8, 2), BlockGene("conv", 8, 2), BlockGene("conv", 8, 2))), odd_tile))


def test_mutation_and_crossover_give_valid_children_and_leave_parents_unchanged(space: SpaceConfig) -> None:
    rng = np.random.default_rng(2)
    changed = 0
    for _ in range(200):
        a, b = random_genome(rng, space), random_genome(rng, space)
        a0, b0 = copy.deepcopy(a), copy.deepcopy(b)
        m = mutate(a, rng, space)
        c = crossover(a, b, rng, space)
        assert a == a0 and b == b0 and a.key == a0.key
        assert not violations(m, space) and not violations(c, space)
        changed += m != a
    assert changed > 190  # a mutation changes the genome (bar rare cases with no valid move)


def test_unknown_space_choices_are_refused_with_the_valid_ones() -> None:
    cfg = load_config()["space"]
    with pytest.raises(ValueError, match="valid"):
        SpaceConfig.from_dict({**cfg, "kinds": ["conv", "attention"]}, 256)


@pytest.mark.parametrize("kind", BLOCK_KINDS)
def test_every_block_of_the_library_runs_on_the_vpu(kind: str) -> None:
    """Exported with both upsamplings, each block passes runtime.check for MYRIAD with no error."""
    for up in UPSAMPLINGS:
        g = Genome((BlockGene("conv", 8), BlockGene(kind, 8, 2, 2 if kind == "mbconv" else 1)), up)
        xml, _, findings = export_ir(GenomeNet(g), (1, 3, 32, 32))
        assert not [f for f in findings if f.severity == "error"]
        assert b"opset11" not in xml


def test_an_op_the_vpu_cannot_run_is_refused_at_export() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 1, 2, stride=2))
    with pytest.raises(TargetCheckError, match="ConvTranspose|unsupported"):
        export_ir(net, (1, 3, 16, 16))


def test_a_genome_given_by_hand_is_held_to_what_flies_not_to_the_search_space() -> None:
    """The baseline U-Net has 8 blocks, more than the search explores: an ablation of it is still
    valid; the budget, the strides, the kinds and the tile still bind."""
    from search.space import unet_genome, violations

    cfg = load_config()
    space = SpaceConfig.from_dict(cfg["space"], int(cfg["export"]["tile"]))
    unet = unet_genome(cfg["model"]["widths"])
    assert violations(unet, space) and not violations(unet, space, within_space=False)
    too_big = unet_genome([64, 128, 256])
    assert any("budget" in v for v in violations(too_big, space, within_space=False))


def test_the_space_draws_genomes_for_the_datas_band_count() -> None:
    """[model] in_channels reaches every genome the search draws, mutates or crosses, so a search
    runs on one-band data (every genome had 3 input channels, and every candidate failed)."""
    cfg = load_config()
    space = SpaceConfig.from_dict(cfg["space"], 256, in_channels=1)
    rng = np.random.default_rng(0)
    a, b = random_genome(rng, space), random_genome(rng, space)
    assert a.in_channels == b.in_channels == 1
    assert mutate(a, rng, space).in_channels == crossover(a, b, rng, space).in_channels == 1
    three = SpaceConfig.from_dict(cfg["space"], 256)
    assert random_genome(np.random.default_rng(0), three) == dataclasses.replace(a, in_channels=3)  # the same draws otherwise
