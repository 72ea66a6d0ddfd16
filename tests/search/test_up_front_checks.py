"""Settings refused before anything is trained (:func:`search.evolution.check_up_front`), the
parameter budget counted with the land gate that is trained, a generation that cannot vary, and the
ablation's network built with the gate its manifests describe."""

from __future__ import annotations

import copy
import signal
from pathlib import Path
from typing import Any

import pytest

from search.config import load_config
from search.evolution import check_up_front, initial_population, next_generation, search_space
from search.space import Genome, count_parameters, violations

CONFIGS = sorted(Path(__file__).parents[2].glob("configs/*.toml"))


@pytest.mark.parametrize("table,key,value,says", [
    ("train", "augment", ["flip", "rotate"], r"\[train\] unknown augmentation \['rotate'\]; valid"),
    ("train", "vessel_fraction", 1.5, r"\[train\] vessel_fraction \(1.5\)"),
    ("data", "modality", "radar", r"\[data\] modality 'radar'; valid: \['optical', 'sar'\]"),
    ("candidate", "torch_device", "tpu", r"\[candidate\] torch_device 'tpu'; valid"),
    ("candidate", "hil_device", "nonsense", r"\[candidate\] hil_device: .*valid"),
    ("candidate", "check_target", "FOO", r"\[candidate\] check_target 'FOO'; valid: \['MYRIAD'\]"),
    ("space", "expansions", [0], r"\[space\] expansions \[0\]; valid"),
    ("space", "widths", [8, -4], r"\[space\] widths \[8, -4\]; valid"),
    ("train", "patch", 98, r"\[train\] patch 98 must be a multiple of 4 "),  # max_blocks 3: two downsamplings
    ("fitness", "accuracy", "f1_pooled", r"\[fitness\] accuracy 'f1_pooled' needs a real \[data\] source"),
])
def test_settings_every_candidate_would_fail_on_are_refused_up_front(
        tiny_cfg: dict[str, Any], table: str, key: str, value: Any, says: str) -> None:
    tiny_cfg[table][key] = value
    with pytest.raises(ValueError, match=says):
        check_up_front(tiny_cfg)


def test_patch_must_suit_the_land_gates_cell_and_the_final_recipe(tiny_cfg: dict[str, Any]) -> None:
    tiny_cfg["space"]["max_downsamples"] = 2  # at most 4x: 36 is a multiple, but not of a 16 px cell
    tiny_cfg["train"]["patch"] = 36
    check_up_front(tiny_cfg)
    cfg = copy.deepcopy(tiny_cfg)
    cfg["train"].update(land_gate="wide", land_weight=1.0)
    cfg["data"]["land_masks"] = "masks"  # what the gate learns from (not read here)
    with pytest.raises(ValueError, match=r"\[train\] patch 36 must be a multiple of 16 .*land gate"):
        check_up_front(cfg)
    tiny_cfg["final"].update(fp32_epochs=1, train={"patch": 38})
    with pytest.raises(ValueError, match=r"\[final.train\] patch 38"):
        check_up_front(tiny_cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_the_shipped_configs_pass_the_up_front_checks(path: Path) -> None:
    check_up_front(load_config(path))


def test_the_budget_counts_the_land_gate_that_is_trained(tiny_cfg: dict[str, Any]) -> None:
    g = Genome.from_dict({"blocks": [{"kind": "conv", "width": 48}, {"kind": "se", "width": 24, "stride": 2},
                                     {"kind": "residual", "width": 32, "stride": 2},
                                     {"kind": "residual", "width": 16, "stride": 2}], "upsample": "bilinear_corners"})
    tiny_cfg["space"].update(widths=[16, 24, 32, 48], max_blocks=6, max_parameters=100000)
    tiny_cfg["export"]["tile"] = 256
    assert count_parameters(g) < 100000 < count_parameters(g, "wide")
    assert violations(g, search_space(tiny_cfg)) == []
    tiny_cfg["final"].update(fp32_epochs=1, train={"land_gate": "wide"})  # the flight model is gated
    assert violations(g, search_space(tiny_cfg)) == [f"{count_parameters(g, 'wide')} parameters with land gate "
                                                     f"'wide'; the budget is 100000"]
    tiny_cfg["final"]["fp32_epochs"] = 0  # no final training: only the candidates' gate counts
    tiny_cfg["train"]["land_gate"] = "wide"
    assert violations(g, search_space(tiny_cfg))


def test_shipped_models_fit_the_budget_with_their_gate() -> None:
    import json

    root = Path(__file__).parents[2]
    for model, config in (("sar", "sar.toml"), ("optical", "optical.toml")):
        manifest = json.loads((root / "models" / model / "manifest.json").read_text())
        cfg = load_config(root / "configs" / config)
        assert violations(Genome.from_dict(manifest["genome"]), search_space(cfg), within_space=False) == []


def _timeout(*_: Any) -> None:
    raise TimeoutError("next_generation did not return")


def test_a_generation_that_cannot_vary_is_filled_with_random_genomes(tiny_cfg: dict[str, Any]) -> None:
    evo = {**tiny_cfg["evolution"], "population": 4, "elite": 0, "crossover_rate": 0.0, "mutation_rate": 0.0,
           "novelty_tries": 0}
    space = search_space(tiny_cfg)
    pop = initial_population(space, 4, 0)
    records = {g.key: {"fitness": float(i)} for i, g in enumerate(pop[:3])}
    records[pop[3].key] = {"fitness": None, "status": "failed"}
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(60)
    try:
        first = next_generation(pop, records, set(pop), space, evo, 1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert len(set(first)) == 4 and all(not violations(g, space) for g in first)
    assert next_generation(pop, records, set(pop), space, evo, 1) == first  # deterministic


def test_the_bound_leaves_generations_that_vary_as_they_were(tiny_cfg: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import search.evolution as evolution

    space = search_space(tiny_cfg)
    evo = tiny_cfg["evolution"]
    pop = initial_population(space, int(evo["population"]), int(evo["seed"]))
    records = {g.key: {"fitness": float(i)} for i, g in enumerate(pop)}
    now = next_generation(pop, records, set(pop), space, evo, 1)
    monkeypatch.setattr(evolution, "FILL_AFTER", 10**9)  # as if there were no bound
    assert next_generation(pop, records, set(pop), space, evo, 1) == now


def test_the_ablation_trains_the_gate_its_manifests_describe(tiny_cfg: dict[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import search.ablate as ablate

    monkeypatch.setattr(ablate, "fit", lambda *a, **k: {"seconds": 0.0, "final_loss": 0.0})
    monkeypatch.setattr(ablate, "make_sampler", lambda *a, **k: None)
    tiny_cfg["train"]["land_gate"] = "wide"
    genome = ablate.parse_genome(None, tiny_cfg)
    branches, _ = ablate.train_branches(tiny_cfg, genome, None, 0)
    for net in branches.values():
        assert net.sea_head is not None and net.land_gate == "wide"
        assert sum(p.numel() for p in net.parameters()) == count_parameters(genome, "wide")


@pytest.mark.parametrize("table", ["export", "final.export"])
def test_an_integer_input_with_a_host_only_log_scale_is_refused_before_training(
        tiny_cfg: dict[str, Any], table: str) -> None:
    """Normalised in the IR, a model cannot take log(1 + counts), which only the host applies: the
    exporter refused it, but only after every candidate (or the final network) had trained."""
    tiny_cfg["data"]["normalization_scale"] = "log"
    tiny_cfg["export"]["input_dtype"] = "float32"
    if table == "export":
        tiny_cfg["export"]["input_dtype"] = "uint8"
    else:
        tiny_cfg["final"]["fp32_epochs"] = 1  # a final training: its recipe is checked too
        tiny_cfg["final"].setdefault("export", {})["input_dtype"] = "uint16"
    says = rf"\[{table}\] input_dtype 'uint(8|16)' normalises in the IR, and \[data\] normalization_scale 'log'"
    with pytest.raises(ValueError, match=says):
        check_up_front(tiny_cfg)


def test_a_final_tile_the_searched_genomes_cannot_be_exported_at_is_refused_up_front(
        tiny_cfg: dict[str, Any]) -> None:
    """[final.export] tile was checked only to be >= 1, while the space admits genomes whose total
    stride divides [export] tile alone: at a final tile it does not divide, the final network's
    skips do not line up, and the search failed on it only once every generation had trained (its
    export in final_pick with a latency limit, or after the whole final training without one)."""
    from search.final import final_config, recipe_estimate

    # max_blocks 3: up to two downsamplings, a total stride of 4, which divides the tile of 128
    g = Genome.from_dict({"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 8, "stride": 2},
                                     {"kind": "conv", "width": 8, "stride": 2}]})
    assert not violations(g, search_space(tiny_cfg))
    tiny_cfg["final"].update(fp32_epochs=1, export={"tile": 98})
    with pytest.raises(RuntimeError):  # what the search met at its end
        recipe_estimate(g, final_config(tiny_cfg)[0], None)
    with pytest.raises(ValueError, match=r"\[final.export\] tile 98 must be a multiple of 4 "):
        check_up_front(tiny_cfg)
    tiny_cfg["final"]["export"] = {"tile": 100}  # a multiple of every stride the space holds
    check_up_front(tiny_cfg)
    tiny_cfg["export"]["tile"] = 132  # 132 = 4 x 33: stride 4 stays in the space, and 98 is still refused
    tiny_cfg["final"]["export"] = {"tile": 98}
    with pytest.raises(ValueError, match=r"\[final.export\] tile 98 must be a multiple of 4 "):
        check_up_front(tiny_cfg)
    tiny_cfg["export"]["tile"] = 130  # 130 = 2 x 65: no genome downsamples past 2, so 98 exports
    check_up_front(tiny_cfg)


def test_an_export_tile_the_land_gates_cell_does_not_divide_is_refused_before_training(
        tiny_cfg: dict[str, Any]) -> None:
    """A cell-averaging land gate ("context", "wide", "wide_texture") needs tiles that are multiples
    of its 16 px cell: only [train] patch was checked, so a tile of 200 (a multiple of every stride of
    the space) passed, and every candidate failed at its export, after its training."""
    import torch

    from search.network import GATE_CELL, GenomeNet

    tiny_cfg["train"].update(land_gate="context", land_weight=1.0)
    tiny_cfg["data"]["land_masks"] = "masks"  # what the gate learns from (not read here)
    tiny_cfg["export"]["tile"] = 200
    g = Genome.from_dict({"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 8, "stride": 2}]})
    assert not violations(g, search_space(tiny_cfg)) and 200 % GATE_CELL
    with pytest.raises(RuntimeError):  # what each candidate met at its export, once trained
        GenomeNet(g, "context").eval()(torch.zeros(1, 3, 200, 200))
    with pytest.raises(ValueError, match=r"\[export\] tile 200 must be a multiple of 16 .*'context' land gate"):
        check_up_front(tiny_cfg)
    tiny_cfg["export"]["tile"] = 208
    check_up_front(tiny_cfg)
    # the final recipe's gate and tile: an ungated search whose flight model is gated at 200 px
    tiny_cfg["train"].update(land_gate="none", land_weight=0.0)
    tiny_cfg["final"].update(fp32_epochs=1, train={"land_gate": "wide", "land_weight": 1.0}, export={"tile": 200})
    with pytest.raises(ValueError, match=r"\[final.export\] tile 200 must be a multiple of 16"):
        check_up_front(tiny_cfg)
