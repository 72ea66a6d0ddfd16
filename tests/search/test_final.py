"""The final training (search.final): the latency limit it is held to, and when it is judged again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from search.state import check_resumable


def test_a_final_training_over_the_latency_limit_does_not_fly(tmp_path: Path) -> None:
    """The final recipe may add a land gate, which costs latency: a final training over [fitness]
    latency_limit_ms is not kept, however it compares on validation, and is not judged again for
    that; the limit changes on resume, since no record stores it."""
    from search.config import load_config
    from search.final import final_config, final_training

    cfg = load_config()
    cfg["final"].update(fp32_epochs=2, aligned_epochs=1)

    def scored(fitness: float, bundle: str, latency: float) -> dict[str, Any]:
        return {"key": "k", "name": "nas-k", "fitness": fitness, "bundle": bundle, "parameters": 1000,
                "training": {"trained_under": "fp32"},
                "device_metrics": {"device": "myriadx-emu", "miou": fitness, "estimated_latency_ms": latency}}

    # where a search in tmp_path keeps them (search.state.rooted)
    searched_bundle, final_bundle = str(tmp_path / "candidates" / "k" / "bundle"), str(
        tmp_path / "final" / "candidates" / "k" / "bundle")
    searched = scored(0.6, searched_bundle, 25.0)
    final = {**scored(0.7, final_bundle, 33.0), "final_budget": final_config(cfg)[1],
             "searched": {"key": "k", "bundle": searched_bundle},
             "compared": {"by": "validation fitness", "searched": 0.6, "final": 0.7}}
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "record.json").write_text(json.dumps(final))
    said: list[str] = []
    kept = final_training(searched, cfg, None, tmp_path, said.append)  # type: ignore[arg-type]
    assert kept["bundle"] == final_bundle
    assert not any("judged again" in line for line in said)
    # the genome trained again (pick) compared with another flight candidate than the one the
    # search now chose: judged again, not retrained
    other = {**scored(0.75, str(tmp_path / "candidates" / "o" / "bundle"), 20.0), "key": "o", "name": "nas-o"}
    kept = final_training(other, cfg, None, tmp_path, said.append, searched)  # type: ignore[arg-type]
    assert kept["bundle"] == other["bundle"]
    assert "judged again" in said[-2]
    stored = json.loads((tmp_path / "final" / "record.json").read_text())
    assert stored["searched"]["key"] == "o" and stored["compared"]["searched"] == 0.75
    kept = final_training(searched, cfg, None, tmp_path, said.append)  # type: ignore[arg-type]
    assert kept["bundle"] == final_bundle
    cfg["fitness"]["latency_limit_ms"] = 30.0
    assert final_training(searched, cfg, None, tmp_path, said.append) is searched  # type: ignore[arg-type]
    assert "33.0 ms, over [fitness] latency_limit_ms = 30.0" in said[-1]
    # a comparison made under another second stage is not made again for a final that cannot fly
    # (it would need the split: there is none here)
    cfg["export"]["discriminate"] = True
    assert final_training(searched, cfg, None, tmp_path, said.append) is searched  # type: ignore[arg-type]
    out = tmp_path / "search"
    check_resumable(out, cfg)
    check_resumable(out, {**cfg, "fitness": {**cfg["fitness"], "latency_limit_ms": 0.0}}, write=False)
    with pytest.raises(ValueError, match="latency_target_ms"):
        check_resumable(out, {**cfg, "fitness": {**cfg["fitness"], "latency_target_ms": 20.0}}, write=False)


def test_a_comparison_made_on_older_second_stage_rows_is_made_again() -> None:
    from search.config import load_config
    from search.discriminate import ROWS_VERSION
    from search.final import BY_SECOND_STAGE, _compared_as_configured

    cfg = load_config()
    cfg["export"].update(discriminate=True, discriminator_kind="trees")
    compared = {"by": BY_SECOND_STAGE, "kind": "trees", "rows": ROWS_VERSION, "searched": 0.5, "final": 0.6}
    assert _compared_as_configured(compared, cfg)
    assert not _compared_as_configured({**compared, "rows": ROWS_VERSION - 1}, cfg)
    assert not _compared_as_configured({k: v for k, v in compared.items() if k != "rows"}, cfg)


def test_a_measured_latency_is_held_to_the_limit_after_training_not_estimated_before() -> None:
    """A device without the cost model (an NPU) has only a measured latency: the final pick takes
    the fittest within the limit as it comes (nothing exported: no data is given here)."""
    from search.config import load_config
    from search.final import final_pick

    cfg = load_config()
    cfg["fitness"]["latency_limit_ms"] = 30.0
    dev = {"device": "NPU", "miou": 0.5, "estimated_latency_ms": None, "runtime_latency_p50_ms": 12.0}
    npu = {"key": "n", "name": "nas-n", "fitness": 0.5, "genome": {}, "parameters": 1, "device_metrics": dev}
    slow = {**npu, "key": "s", "fitness": 0.6, "device_metrics": {**dev, "runtime_latency_p50_ms": 40.0}}
    assert final_pick([slow, npu], cfg, None) == (npu, False)  # type: ignore[arg-type]
    assert final_pick([slow], cfg, None) is None  # type: ignore[arg-type]


def test_the_seed_study_trains_the_final_recipe_with_the_candidates_gate_only_with_final(tmp_path: Path) -> None:
    """scripts/seed_study.py --candidates-gate is the recipe [final] over_limit = "drop_gate" trains,
    so alone it says nothing: refused before any data is read."""
    from scripts.seed_study import main

    with pytest.raises(SystemExit) as exc:
        main(["--config", "configs/sar.toml", "--out", str(tmp_path / "study"), "--candidates-gate"])
    assert exc.value.code == 2
    assert not (tmp_path / "study").exists()


def test_the_candidates_gate_replaces_only_the_final_recipes_gate_and_sea_shift() -> None:
    """final_config(cfg, candidates_gate=True): the final epochs and other [final.*] settings stay,
    the gate and its sea shift are the candidates'; the budget says so, so a stored final training
    of the gated recipe is not reused for it."""
    from search.config import load_config
    from search.final import final_config

    cfg = load_config(Path("configs/sar.toml"))
    gated, gated_budget = final_config(cfg)
    plain, plain_budget = final_config(cfg, candidates_gate=True)
    assert (gated["train"]["land_gate"], plain["train"]["land_gate"]) == ("wide", cfg["train"]["land_gate"])
    assert (gated["export"]["sea_shift"], plain["export"]["sea_shift"]) == (1.0, cfg["export"]["sea_shift"])
    assert plain["candidate"]["fp32_epochs"] == gated["candidate"]["fp32_epochs"] == 30
    assert plain["export"]["min_scores"] == gated["export"]["min_scores"]
    assert plain_budget != gated_budget and plain_budget["train"] == {"land_gate": "none"}
    assert cfg["final"]["train"]["land_gate"] == "wide"  # the config itself is not changed


def test_pricing_an_integer_input_recipe_needs_the_searchs_data() -> None:
    """An integer-input IR folds the training data's normalisation in: without the data the
    estimate would price another graph, so it is refused, not guessed."""
    from search.config import load_config
    from search.final import recipe_estimate
    from search.space import BlockGene, Genome

    cfg = load_config()
    genome = Genome((BlockGene("conv", 8), BlockGene("conv", 16, 2)))
    assert recipe_estimate(genome, cfg, None).total_ms > 0  # float32 input: no data needed
    cfg["export"]["input_dtype"] = "uint8"
    with pytest.raises(ValueError, match="input_dtype 'uint8' folds the training data's normalisation"):
        recipe_estimate(genome, cfg, None)


def test_the_final_recipe_with_the_candidates_gate_is_checked_before_the_search() -> None:
    """With "drop_gate" the final training may train the candidates' gate at the final recipe's
    patch size: refused up front when that pair cannot train, not after the whole search."""
    from search.config import load_config
    from search.evolution import check_up_front

    cfg = load_config()
    cfg["space"]["max_downsamples"] = 3  # genomes of stride 8 at most
    cfg["train"]["land_gate"] = "context"  # a cell gate: patches must be a multiple of its 16 px cell
    cfg["train"]["land_weight"], cfg["data"]["land_masks"] = 1.0, "masks"  # what any gate learns from
    cfg["final"].update(fp32_epochs=1, train={"land_gate": "local", "patch": 24})
    cfg["fitness"]["latency_limit_ms"] = 30.0
    cfg["final"]["over_limit"] = "next_genome"
    check_up_front(cfg)  # only the gated recipe can be trained: local gate, 24 px patches
    cfg["final"]["over_limit"] = "drop_gate"
    with pytest.raises(ValueError, match=r"\[final.train\] patch 24 must be a multiple of 16 .*land gate's 16 px cell"):
        check_up_front(cfg)


def test_a_final_training_that_failed_is_said_to_have_failed(tmp_path: Path) -> None:
    """A final training that crashed (or whose IR failed the target check) was reported as a
    comparison it lost ("validation fitness None against ..."), and the search exited 0 as if so."""
    from search.config import load_config
    from search.final import final_config, final_training

    cfg = load_config()
    cfg["final"].update(fp32_epochs=2, aligned_epochs=1)
    searched = {"key": "k", "name": "nas-k", "fitness": 0.6, "bundle": "searched", "parameters": 1000,
                "device_metrics": {"device": "myriadx-emu", "miou": 0.6, "estimated_latency_ms": 25.0}}
    failed = {"key": "k", "name": "nas-k", "status": "failed", "reason": "RuntimeError: out of memory",
              "fitness": None, "final_budget": final_config(cfg)[1], "searched": {"bundle": "searched"},
              "compared": {"by": "validation fitness", "searched": 0.6, "final": None}}
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "record.json").write_text(json.dumps(failed))
    said: list[str] = []
    assert final_training(searched, cfg, None, tmp_path, said.append) is searched  # type: ignore[arg-type]
    assert said[-1].startswith("final training of nas-k failed: RuntimeError: out of memory; the flight model "
                               "is the searched one")


def test_the_candidates_gate_is_trained_as_the_candidates_trained_it() -> None:
    """A final recipe without a gate ([final.train] land_gate "none", land_weight 0) beside gated
    candidates: with no latency limit the candidates' gate is never tried, so it is not checked
    (it was refused, naming a gate the user had not set there); with one, "drop_gate" trains the
    candidates' gate with their land loss, which it cannot train without."""
    from search.config import load_config
    from search.evolution import check_up_front
    from search.final import final_config, final_recipes

    cfg = load_config()
    cfg["train"].update(land_gate="context", land_weight=1.0, land_focus=2.0)
    cfg["data"]["land_masks"] = "masks"
    cfg["final"].update(fp32_epochs=30, train={"land_gate": "none", "land_weight": 0.0, "land_focus": 0.0})
    assert final_recipes(cfg) == (False,)
    check_up_front(cfg)
    cfg["fitness"]["latency_limit_ms"] = 30.0
    assert final_recipes(cfg) == (False, True)
    check_up_front(cfg)
    gated = final_config(cfg, candidates_gate=True)[0]["train"]
    assert (gated["land_gate"], gated["land_weight"], gated["land_focus"]) == ("context", 1.0, 2.0)
    assert final_config(cfg)[0]["train"]["land_weight"] == 0.0


def test_a_final_record_whose_bundle_was_replaced_is_trained_again(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every budget of a genome writes one bundle folder: a training of another budget, killed after
    it rewrote the folder and before its record, left a record whose bundle was another network,
    and the search shipped that bundle with the record's figures (found by a review of 2026-12-04)."""
    import shutil

    import search.final as final_module
    from runtime.bundle import read_bundle
    from search.config import load_config
    from search.final import final_training

    cfg = load_config()
    cfg["final"].update(fp32_epochs=2, aligned_epochs=1)
    bundle = tmp_path / "final" / "candidates" / "k" / "bundle"
    shutil.copytree(Path(__file__).resolve().parents[2] / "models" / "default", bundle)
    genome = {"blocks": [{"kind": "conv", "width": 8}]}
    searched = {"key": "k", "name": "nas-k", "fitness": 0.6, "bundle": "searched", "parameters": 1000,
                "genome": genome, "training": {"trained_under": "fp32"},
                "device_metrics": {"device": "myriadx-emu", "miou": 0.6, "estimated_latency_ms": 25.0}}

    def record(measured: str) -> dict[str, Any]:
        return {**searched, "fitness": 0.7, "bundle": str(bundle),
                "device_metrics": {**searched["device_metrics"], "bundle_sha256": measured},
                "final_budget": final_module.final_config(cfg)[1], "searched": final_module._searched(searched),
                "compared": {"by": "validation fitness", "searched": 0.6, "final": 0.7}}

    trained: list[Any] = []
    monkeypatch.setattr(final_module, "evaluate_candidate",
                        lambda g, c, d, out: trained.append(g) or record(read_bundle(bundle).id))
    monkeypatch.setattr(final_module, "compare_final",
                        lambda best, rec, c, out: {"by": "validation fitness", "searched": 0.6, "final": 0.7})
    said: list[str] = []
    (tmp_path / "final" / "record.json").write_text(json.dumps(record(read_bundle(bundle).id)))
    assert final_training(searched, cfg, None, tmp_path, said.append)["bundle"] == str(bundle)  # type: ignore[arg-type]
    assert trained == []  # the bundle is the one measured: reused
    (tmp_path / "final" / "record.json").write_text(json.dumps(record("0" * 64)))
    final_training(searched, cfg, None, tmp_path, said.append)  # type: ignore[arg-type]
    assert len(trained) == 1 and "is not the bundle its record measured" in " ".join(said)


def test_a_second_stage_that_cannot_be_fitted_leaves_no_flight_model(tmp_path: Path) -> None:
    """[export] discriminate: the flight model has a second stage. One that cannot be fitted (here no
    split to fit it on; in the review, a tiny model finding no ship) raised after OUT/flight_model
    had been written without it, and that model stayed to be shipped."""
    import shutil

    from search.final import add_second_stage

    out = tmp_path / "search"
    shutil.copytree(Path(__file__).resolve().parents[2] / "models" / "default", out / "flight_model")
    (out / "report").mkdir()
    (out / "report" / "flight_model_check.json").write_text("{}")
    with pytest.raises(Exception):
        add_second_stage(out, "CPU", "trees", print)
    assert not (out / "flight_model").exists()
    assert not (out / "report" / "flight_model_check.json").exists()
