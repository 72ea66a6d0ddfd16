"""The evolutionary strategy: population, elitism, tournament selection, crossover, mutation, cache.

Defaults (``[evolution]``): population 16, 10 generations, as the reference paper. Each generation:

1. every genome of the population without a record in the store is evaluated (in parallel when
   asked: :mod:`search.workers`), and its record persisted the moment it finishes;
2. the next population is the ``elite`` best genomes, then children: parents by tournament on
   fitness, one-point crossover with ``crossover_rate``, mutation with ``mutation_rate``; a child
   already seen in this search is mutated again (up to ``novelty_tries``), so no genome is trained
   twice and the budget goes to new architectures. Genomes are immutable (:mod:`search.space`):
   crossover and mutation build new ones and never touch a parent.

After the last generation the best genome may be trained again with its own budget
(``[final]``, :mod:`search.final`) and the flight model given its second stage
(``[export] discriminate``).

Selection uses validation scores only (synthetic seeds ``data.val_seed_start ..``, or the validation
split of a real set); the test seeds (< 100) and a real set's test split are never seen by the search.
Generation ``g`` draws from ``numpy.random.default_rng([seed, g])``, so the whole search replays
identically from its records: that is how it resumes (:mod:`search.state`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import check_input_holds
from runtime.discriminate import check_kind
from search.candidate import hil_scores, require_val_vessels
from search.config import FINAL_OVERRIDES, check_values
from search.dataset import SearchData, prepare_data, training_counts
from search.final import add_second_stage, drop_flight_model, final_config, final_pick, final_recipes, final_training
from search.fitness import ACCURACIES, check_fitness_settings, flight_pick
from search.recipe import check_patch, check_recipe, check_scoring
from search.space import Genome, SpaceConfig, crossover, mutate, random_genome
from search.state import CandidateStore, check_resumable, record_config, search_lock, write_json_atomic
from search.workers import RAY_EXTRA, make_evaluator


@dataclass
class SearchResult:
    """What a search produced: every generation, every record, how many were trained by this call."""

    out: Path
    generations: list[dict[str, Any]]
    records: dict[str, dict[str, Any]]
    trained: int
    best: dict[str, Any] | None


def _fit(record: dict[str, Any] | None) -> float:
    f = None if record is None else record.get("fitness")
    return -np.inf if f is None else float(f)


def initial_population(space: SpaceConfig, size: int, seed: int) -> list[Genome]:
    rng = np.random.default_rng([seed, 0])
    population: list[Genome] = []
    for _ in range(100 * size):
        g = random_genome(rng, space)
        if g not in population:
            population.append(g)
        if len(population) == size:
            return population
    raise ValueError(f"the space holds fewer than {size} distinct genomes within its budget")


#: Attempts per member of the population after which :func:`next_generation` fills the rest with
#: random genomes (far above what any search with variation needs), and draws allowed for that.
FILL_AFTER = 1000
RANDOM_TRIES = 10000


def next_generation(population: list[Genome], records: dict[str, dict[str, Any]], seen: set[Genome],
                    space: SpaceConfig, evo: dict[str, Any], generation: int) -> list[Genome]:
    """The population of ``generation`` from the scored previous one (deterministic in its inputs).

    After ``FILL_AFTER`` x population attempts (only when selection and variation cannot make enough
    distinct children: no crossover, no mutation, fewer distinct scored genomes than the population)
    the rest are random genomes of the space instead of an endless loop.

    Raises:
        ValueError: when not even random draws find enough distinct genomes.
    """
    rng = np.random.default_rng([int(evo["seed"]), generation])
    # fittest first, equal fitness by key ASCENDING: the elite and the tournament's pool order (and so
    # every draw that replays from the records) rest on it. search.fitness.ranked, which the flight
    # pick reads, breaks the same ties by key descending; neither is changed, as either change could
    # alter what a shipped search draws or ships (its docstring says which to move if they are unified)
    ranked = sorted(population, key=lambda g: (-_fit(records.get(g.key)), g.key))
    scored = [g for g in ranked if np.isfinite(_fit(records.get(g.key)))]
    nxt = scored[: int(evo["elite"])]

    def tournament() -> Genome:
        pool = scored or ranked
        picks = rng.choice(len(pool), size=min(int(evo["tournament"]), len(pool)), replace=False)
        return pool[int(min(picks))]  # pool is sorted best first

    attempts = 0
    while len(nxt) < int(evo["population"]):
        attempts += 1
        if attempts > FILL_AFTER * int(evo["population"]) + RANDOM_TRIES:
            raise ValueError(f"no new genome for generation {generation} after {attempts - 1} attempts: the space "
                             f"holds fewer than {evo['population']} distinct genomes")
        if not scored or attempts > FILL_AFTER * int(evo["population"]):
            # No variation can make a new child (crossover_rate = mutation_rate = 0, novelty_tries = 0,
            # fewer distinct scored genomes than the population): the rest are drawn at random from
            # the same rng, so the generation stays deterministic. A generation that never gets here
            # draws exactly what it drew before this bound existed.
            child = random_genome(rng, space)
        else:
            child = tournament()
            if rng.random() < float(evo["crossover_rate"]):
                child = crossover(child, tournament(), rng, space)
            if rng.random() < float(evo["mutation_rate"]):
                child = mutate(child, rng, space)
            for _ in range(int(evo["novelty_tries"])):
                if child not in seen and child not in nxt:
                    break
                child = mutate(child, rng, space)
        if child not in nxt and (child not in seen or attempts > 50 * int(evo["population"])):
            nxt.append(child)
    return nxt


def check_up_front(cfg: dict[str, Any]) -> None:
    """The settings each candidate (or the final training) would fail on only after it was trained,
    checked before anything is: ``[fitness] accuracy`` (a pooled one only with a real source) and
    ``latency``, ``[space]`` (:func:`search_space`), Ray installed for ``[run] ray_address``, and the
    candidates' recipe
    (:func:`search.recipe.check_recipe`, :func:`_check_candidates`), the final training's too
    when there is one, with its export tile (:func:`_check_final_tile`).

    Raises:
        ValueError: naming the setting.
    """
    check_fitness_settings(cfg["fitness"])
    if cfg["fitness"]["accuracy"].endswith("_pooled") and cfg["data"].get("source") in (None, "", "synthetic"):
        # hil_scores of synthetic scenes are per scene, with no pooled figures: every fitness would be None
        raise ValueError(f"[fitness] accuracy {cfg['fitness']['accuracy']!r} needs a real [data] source (pooled "
                         f"figures are over a split's samples); valid with synthetic scenes: "
                         f"{[a for a in ACCURACIES if not a.endswith('_pooled')]}")
    space = search_space(cfg)  # [space] itself: refused here, not after the data is prepared
    address = cfg["run"].get("ray_address")
    if address and importlib.util.find_spec("ray") is None:  # before the data is prepared, not after
        raise ValueError(f"[run] ray_address (--ray-address) {address!r} needs Ray, which is not installed: "
                         f"{RAY_EXTRA}")
    check_recipe(cfg)
    _check_candidates(cfg, "train")
    if int(cfg["final"]["fp32_epochs"]) > 0:
        for candidates_gate in final_recipes(cfg):  # with "drop_gate", the candidates' gate may be trained too
            recipe = final_config(cfg, candidates_gate)[0]
            check_recipe(recipe, {t: f"final.{t}" for t in FINAL_OVERRIDES if cfg["final"].get(t)})
            _check_candidates(recipe, "final.train" if cfg["final"].get("train") else "train")
            _check_final_tile(space, int(recipe["export"]["tile"]))


def _check_candidates(cfg: dict[str, Any], train: str) -> None:
    """What a search's candidate is scored and trained with, each rule from the code that applies it:
    ``[candidate] hil_device`` and ``check_target`` (:func:`search.recipe.check_scoring`; the
    device not with ``[run] ray_address``, whose workers may have devices this host lacks), and
    ``[train] patch`` (``train`` names the table) a multiple of the largest total stride a genome of
    ``[space]`` can have, and of the land gate's cell: else some candidates fail on their first batch.

    Raises:
        ValueError: naming the setting and what is valid.
    """
    check_scoring(cfg["candidate"], here=not cfg["run"].get("ray_address"))
    # block 0 keeps full resolution (search.space), so at most max_blocks - 1 blocks downsample
    stride = 2 ** max(0, min(int(cfg["space"]["max_downsamples"]), int(cfg["space"]["max_blocks"]) - 1))
    check_patch(stride, cfg, train, "the largest total stride of a genome of [space], 2**max_downsamples")


def _check_final_tile(space: SpaceConfig, final_tile: int) -> None:
    """The final recipe's ``[final.export] tile`` a multiple of the largest total stride a genome of
    the ``space`` can have (:attr:`SpaceConfig.max_stride`): the space admits a genome whose stride
    divides ``[export] tile``, the candidates' tile, and its final network is exported at the final
    one, where a stride that does not divide it leaves skips that do not line up: the export failed
    only once the whole search (and, without a latency limit, the final training) had run.

    Raises:
        ValueError: naming the setting and what is valid.
    """
    stride = space.max_stride
    if final_tile % stride:
        raise ValueError(f"[final.export] tile {final_tile} must be a multiple of {stride} (the largest total "
                         f"stride of a genome of [space] at [export] tile {space.tile}); valid: e.g. "
                         f"{max(stride, final_tile // stride * stride)}")


def search_space(cfg: dict[str, Any]) -> SpaceConfig:
    """The search's space: ``[space]`` for the export tile and the data's bands, its parameter budget
    counted with every land gate a genome is trained with: the candidates' (``[train] land_gate``)
    and, when there is a final training, the final one's (``[final.train] land_gate``), whose
    network is the flight model."""
    return SpaceConfig.from_dict(cfg["space"], int(cfg["export"]["tile"]), int(cfg["model"]["in_channels"]),
                                 budget_gates(cfg))


def budget_gates(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The land gates the parameter budget counts (:func:`search_space`): so a [final] setting
    changes the space, and a search may not resume across such a change (search.state)."""
    gates = [cfg["train"]["land_gate"]]
    if int(cfg["final"]["fp32_epochs"]) > 0:
        gates.append(final_config(cfg)[0]["train"]["land_gate"])
    return tuple(dict.fromkeys(gates))


def run_search(cfg: dict[str, Any], out: Path, progress: bool = True) -> SearchResult:
    """Run (or resume) the search configured by ``cfg`` in ``out``; writes the best flight model,
    the report and ``generations.json``. One search at a time in a folder (:func:`search_lock`)."""
    check_values(cfg)  # a config built or changed in code, not only one loaded from TOML
    check_up_front(cfg)
    check_kind(cfg["export"]["discriminator_kind"], "[export] discriminator_kind")
    if cfg["export"].get("discriminate"):
        from search.discriminate import check_cut_by

        check_cut_by(cfg["export"]["discriminator_cut_by"], "[export] discriminator_cut_by")
    if cfg["export"].get("discriminate") and cfg["data"].get("source") in (None, "", "synthetic"):
        raise ValueError("[export] discriminate needs a real [data] source: the second stage is fitted on its split")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with search_lock(out):
        return _run_search(cfg, out, progress)


def _run_search(cfg: dict[str, Any], out: Path, progress: bool) -> SearchResult:
    """:func:`run_search` once its config has passed the checks that need no folder, and the folder is its."""
    from search.report import verify_flight_model, write_flight_model, write_report

    check_resumable(out, cfg, write=False, space=budget_gates)
    evo = cfg["evolution"]
    space = search_space(cfg)
    population = initial_population(space, int(evo["population"]), int(evo["seed"]))
    store = CandidateStore(out)
    store.all()  # every record of another version refused now (search.state.read_record), not after a generation
    mixed = _training_device(cfg, store)
    if mixed:  # said whatever --progress says: a resume that changes the numerics must not pass unnoticed
        print(f"warning: {mixed}", file=sys.stderr)
    data: SearchData = prepare_data(cfg, out / "data")
    for recipe, table in ((cfg, "export"), (final_config(cfg)[0], "final.export")):
        check_input_holds(recipe["export"]["input_dtype"], training_counts(data), f"[{table}] input_dtype",
                          "the training data")
    # a cut chosen by object F1 on a validation split without ships would be arbitrary: refused
    # before anything trains, not found by every candidate after its training
    final_on = int(cfg["final"]["fp32_epochs"]) > 0 and final_config(cfg)[0]["export"]["choose_postprocessing"]
    cuts = [name for name, on in (("[export] choose_postprocessing", cfg["export"]["choose_postprocessing"]),
                                  ("[final.export] choose_postprocessing", final_on),
                                  ("[export] discriminate", cfg["export"].get("discriminate"))) if on]
    if cuts:
        require_val_vessels(data, " and ".join(cuts))
    scoring = _scoring_device(cfg, store)
    # recorded only once the config has passed every check above: a refused one must not become
    # the folder's, or the corrected config would be refused on resume
    record_config(out, cfg)
    if scoring is not None:  # every candidate of this run on that device, not each on what flight is then
        cfg = {**cfg, "candidate": {**cfg["candidate"], "hil_device": scoring}}
    say = print if progress else (lambda *_: None)
    seen: set[Genome] = set(population)
    generations: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any]] = {}
    trained = 0
    with make_evaluator(cfg, data, out) as evaluator:
        for gen in range(int(evo["generations"])):
            todo = [g for g in population if g.key not in store]
            cached = len(population) - len(todo)
            say(f"generation {gen + 1}/{evo['generations']}: {len(todo)} to train, {cached} from the store")
            for record in evaluator.evaluate(todo, desc=f"gen {gen + 1}", progress=progress):
                store.put(record)  # persisted the moment it finishes
                trained += 1
                say(f"  {record['name']}: {record['status']}, fitness {record.get('fitness')}")
            for g in population:
                records[g.key] = store.get(g.key)  # type: ignore[assignment]
            fits = [records[g.key].get("fitness") for g in population]
            generations.append({"generation": gen + 1, "population": [g.key for g in population],
                                "fitness": fits, "trained_now": len(todo)})
            write_json_atomic(out / "generations.json", generations)
            if gen + 1 < int(evo["generations"]):
                population = next_generation(population, records, seen, space, evo, gen + 1)
                seen.update(population)
    best = flight_pick(list(records.values()), cfg["fitness"], say)
    if best is not None and int(cfg["final"]["fp32_epochs"]) > 0:
        pick = final_pick(list(records.values()), cfg, data, say)
        if pick is not None:
            best = final_training(best, cfg, data, out, say, pick.record, pick.candidates_gate)
    if best is not None:
        write_flight_model(best, out / "flight_model", cfg)
        check = verify_flight_model(
            best, out / "flight_model",
            lambda bundle, root, device, profile: hil_scores(bundle, data, root, device, profile),
            out / "report" / "flight_model_check.json")
        if not check["identical"]:
            say(f"warning: the shipped flight model does not reproduce its search figures: {check}")
        if cfg["export"].get("discriminate"):
            add_second_stage(out, best["device_metrics"]["device"], cfg["export"]["discriminator_kind"], say,
                             cut_by=cfg["export"]["discriminator_cut_by"])
    else:  # no flight model this run: none of an earlier run's (e.g. over a limit set since) may stay to ship
        drop_flight_model(out)
    write_report(out, generations, records, cfg, best)
    say(f"trained {trained} candidates in this run; {len(records)} distinct in the search")
    return SearchResult(out, generations, records, trained, best)


def _scoring_device(cfg: dict[str, Any], store: CandidateStore) -> str | None:
    """The device ``[candidate] hil_device`` names here (``flight``: MYRIAD, else NPU, else the twin),
    resolved once for the whole run; None with ``[run] ray_address`` (resolved by each worker).

    Raises:
        ValueError: when the folder's candidates were scored on another device (a search resumed
            where ``flight`` is another device than where it began): their fitness and this run's
            would rank two devices' accuracy and latency (an estimate against a measurement) as one.
    """
    if cfg["run"].get("ray_address"):
        return None
    from runtime.device import resolve
    from runtime.device_names import device_family

    here = resolve(cfg["candidate"]["hil_device"])
    # by family: the same stick on another USB port (MYRIAD.3.1 for MYRIAD.1.2) is the same device
    before = sorted({r["device_metrics"]["device"] for r in store.all() if r.get("device_metrics")
                     and device_family(r["device_metrics"]["device"]) != device_family(here)})
    if before:
        raise ValueError(f"[candidate] hil_device {cfg['candidate']['hil_device']!r} is {here} here, but the "
                         f"candidates of {store.out} were scored on {before}: one search ranks one device's "
                         f"figures; resume where it is {before[0]}, or use another --out")
    return here


def _training_device(cfg: dict[str, Any], store: CandidateStore) -> str | None:
    """Check the torch device ``[candidate] torch_device`` names here against this host and the
    folder's records (each says where it trained: ``training.torch_device``); nothing with ``[run]
    ray_address`` (each worker resolves its own). A resume loads no torch state (the records hold
    figures and IR bundles), so there is nothing to map from one device to another.

    Returns a warning when the folder's candidates were trained on another kind of device (a search
    begun with ``auto`` on a lent GPU machine and resumed on the CPU, as a search spanning sessions
    is): allowed, since that is how such a search is finished, but one search's fitness then ranks
    two trainings' numerics (CUDA convolutions run in TF32 by default), which the warning says, and
    each record names its device. None otherwise. (A CUDA device this host lacks never gets here:
    :func:`check_up_front` refuses it, through :func:`search.train.torch_device`.)
    """
    if cfg["run"].get("ray_address"):
        return None
    import torch

    from search.train import torch_device

    name = cfg["candidate"]["torch_device"]
    here = torch_device(name)
    before = sorted({str(r["training"]["torch_device"]) for r in store.all()
                     if (r.get("training") or {}).get("torch_device")
                     and torch.device(r["training"]["torch_device"]).type != here.type})
    if not before:
        return None
    return (f"[candidate] torch_device {name!r} is {here} here, but candidates of {store.out} were trained on "
            f"{before}: this search's fitness ranks both devices' training (CUDA convolutions run in TF32); "
            f"each record's training.torch_device says which")


def load_generations(out: Path) -> list[dict[str, Any]]:
    return json.loads((Path(out) / "generations.json").read_text())
