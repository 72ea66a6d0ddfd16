"""The final training: the search's pick trained again with its own budget, and what flies.

After the last generation (``[final]``, when ``fp32_epochs`` > 0) a genome is trained once more
from scratch under the final recipe (:func:`final_config`: the ``[final]`` epochs, ``[final.train]``
and ``[final.export]`` over the candidates' tables), exported and scored exactly as a candidate.

Which genome, and with which gate (:func:`final_pick`): the final recipe may give the network a
land gate, which costs latency (1.8 to 5 ms on the SAR search's pick: docs/models.md), and the cost
model's estimate reads the IR's ops and shapes, not its weights, so it is known before training
(:func:`recipe_estimate`) and no budget goes to a network that could not fly (nor to one whose
estimate leaves op types unpriced: a lower bound cannot show it fits). When the gate
takes the fittest candidate over ``[fitness] latency_limit_ms``, ``[final] over_limit`` says what
gives way: the gate (``"drop_gate"``: the same genome, trained with the candidates' own gate; the
search chose the genome, the gate is the recipe's add-on) or the genome (``"next_genome"``: the
fittest candidate whose gated network fits). With ``"drop_gate"``, a genome over the limit under
both recipes (other ``[final.export]`` settings can do that) passes the choice to the next genome,
gate first. Both apply to estimated latencies only: a measured one is known after training.

Whether it flies: when it is within the limit and at least as good on validation as the flight
candidate the search chose (:func:`compare_final`); with a second stage (``[export] discriminate``)
each is judged by what its own second stage's cut was chosen for on validation (F1, or F1 plus the
outlines' pooled vessel IoU: ``[export] discriminator_cut_by``, :func:`_by_second_stage`), and the
flight model then gets its second stage here (:func:`add_second_stage`).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, NamedTuple

from runtime.bundle import BundleError, read_bundle
from runtime.ov_api import read_ir
from runtime.latency import LatencyEstimate, estimate_latency
from search.candidate import evaluate_candidate, manifest_for, shift_sea_for_export
from search.config import FINAL_OVERRIDES
from search.dataset import SearchData
from search.export_ir import export_ir
from search.fitness import latency_ms, ranked, uses_estimate, within_limit
from search.input_types import with_input_dtype
from search.network import GenomeNet
from search.space import Genome
from search.state import read_record, rooted, write_json_atomic


#: What gives way when the final recipe's land gate takes the fittest candidate over the limit
#: (``[final] over_limit``; see the module's docstring).
OVER_LIMIT = ("drop_gate", "next_genome")


class FinalPick(NamedTuple):
    """What the final training trains: ``record``'s genome, under the final recipe, or with the
    candidates' own land gate instead of the recipe's when ``candidates_gate`` (:func:`final_config`)."""

    record: dict[str, Any]
    candidates_gate: bool = False


def final_pick(records: list[dict[str, Any]], cfg: dict[str, Any], data: SearchData,
               say: Any = print) -> FinalPick | None:
    """The candidate whose genome the final training trains, and with which gate: the fittest one
    within ``[fitness] latency_limit_ms`` whose network under the final recipe is too
    (:func:`recipe_estimate`, with every op type priced), or, with ``[final] over_limit = "drop_gate"``, under the final
    recipe with the candidates' gate when only the recipe's gate is over; None when there is none.
    With no limit the fittest (of equal fitness, the greater key: :func:`search.fitness.ranked`'s order,
    the flight pick's); a candidate whose latency is measured (known only after training:
    ``[fitness] latency = "measured"``, or a device without the cost model) is taken as it comes,
    and :func:`final_training` holds its final network to the limit.

    Raises:
        ValueError: for an ``[final] over_limit`` not in :data:`OVER_LIMIT`.
    """
    fit = cfg["fitness"]
    recipes = [(candidates_gate, final_config(cfg, candidates_gate)[0]) for candidates_gate in final_recipes(cfg)]
    scored = [r for r in ranked(records) if within_limit(r, fit)]
    if float(fit["latency_limit_ms"]) == 0:
        return FinalPick(scored[0]) if scored else None
    limit = float(fit["latency_limit_ms"])
    for record in scored:
        if not uses_estimate(record, fit["latency"]):
            # a measured latency (asked for, or a device without the cost model): after training
            return FinalPick(record)
        genome = Genome.from_dict(record["genome"])
        for candidates_gate, recipe in recipes:
            estimate = recipe_estimate(genome, recipe, data)
            ms, unpriced = estimate.total_ms, estimate.unpriced_ops
            if ms <= limit and not unpriced:
                return FinalPick(record, candidates_gate)
            # an estimate with unpriced op types is a lower bound (as fitness() treats a candidate's):
            # under the limit it proves nothing, so the network is not taken for one that fits
            why = (f"would take at least {ms:.1f} ms (op types the cost model does not price: "
                   f"{', '.join(unpriced)}; not taken as within" if unpriced else f"would take {ms:.1f} ms (over")
            say(f"final training: {record['name']} {why} [fitness] latency_limit_ms = {fit['latency_limit_ms']}) "
                f"under the final recipe with the {recipe['train']['land_gate']!r} land gate"
                + ("; trying it with the candidates' gate" if not candidates_gate and len(recipes) > 1
                   else "; not trained again"))
    return None


def final_recipes(cfg: dict[str, Any]) -> tuple[bool, ...]:
    """The recipes the final training may train, as :func:`final_config`'s ``candidates_gate``: the
    final recipe, and, with ``[final] over_limit = "drop_gate"``, a ``[fitness] latency_limit_ms``
    (without one no recipe is over it) and a final gate other than the candidates', the same with
    the candidates' gate. What the search checks up front and what :func:`final_pick` tries, from
    one rule.

    Raises:
        ValueError: for an ``[final] over_limit`` not in :data:`OVER_LIMIT`.
    """
    drop = check_over_limit(cfg["final"]["over_limit"]) == "drop_gate" and float(cfg["fitness"]["latency_limit_ms"]) > 0
    if drop and final_config(cfg)[0]["train"]["land_gate"] != cfg["train"]["land_gate"]:
        return (False, True)
    return (False,)


def check_over_limit(value: Any) -> str:
    """``[final] over_limit`` if it is one of :data:`OVER_LIMIT`, else a ValueError listing them."""
    if value not in OVER_LIMIT:
        raise ValueError(f"[final] over_limit {value!r}; valid: {list(OVER_LIMIT)}")
    return str(value)


def recipe_estimate(genome: Genome, cfg: dict[str, Any], data: SearchData | None) -> LatencyEstimate:
    """The cost model's estimate, layer by layer, of an untrained ``genome`` exported as
    :func:`search.candidate.evaluate_candidate` exports it under ``cfg`` and estimated as the runtime
    estimates it: the estimate reads the IR's ops and shapes, not its weights. ``data`` (the
    search's, for the normalisation folded into the IR) is needed only when ``[export]
    input_dtype`` is not float32 (``scripts/price_genome.py`` prices genomes without a split).

    Raises:
        ValueError: for an integer input type without ``data``.
    """
    tile = int(cfg["export"]["tile"])
    net = GenomeNet(genome, land_gate=cfg["train"]["land_gate"])
    shift_sea_for_export(net, cfg, {})
    xml, bin_, _ = export_ir(net, (1, genome.in_channels, tile, tile), cfg["candidate"]["check_target"])
    dtype = cfg["export"]["input_dtype"]
    if dtype != "float32":
        if data is None:
            raise ValueError(f"[export] input_dtype {dtype!r} folds the training data's normalisation into the IR: "
                             f"pricing it needs the search's data")
        xml, bin_, _ = with_input_dtype(xml, bin_, manifest_for(genome, data, cfg, {}, xml, {}, "estimate"), dtype)
    return estimate_latency(read_ir(xml, bin_))


def final_training(best: dict[str, Any], cfg: dict[str, Any], data: SearchData, out: Path,
                   say: Any = print, pick: dict[str, Any] | None = None,
                   candidates_gate: bool = False) -> dict[str, Any]:
    """The genome of ``pick`` (:func:`final_pick`; default ``best``, the flight candidate the search
    chose) trained again from scratch with the ``[final]`` budget (with the candidates' land gate
    when ``candidates_gate``: :func:`final_config`), exported and scored like a
    candidate; returns that record when its network is within ``[fitness] latency_limit_ms`` and it
    is at least as good on validation as ``best`` (:func:`compare_final`), else ``best``.

    The record is kept in ``OUT/final/record.json`` (with the budget, the searched candidate it was
    compared with, and the comparison) and reused on resume while the genome and the budget are
    unchanged, so a finished search run again trains nothing here either (it is written before the
    comparison too, so a comparison that fails loses no training). A reused record whose
    comparison was made against another candidate, under another ``[export]`` second stage or on
    older second-stage rows is judged again (not retrained) before it decides.
    """
    pick = best if pick is None else pick
    final_cfg, budget = final_config(cfg, candidates_gate)
    path = out / "final" / "record.json"
    record = read_record(path, out / "final") if path.exists() else None
    if record is not None and record.get("searched", {}).get("key"):
        record["searched"] = rooted(record["searched"], out)
    stale = record is not None and not _measured_bundle_is_there(record)
    if stale:  # every budget of a genome writes one bundle folder: another budget's training replaced it
        say(f"final training: {record['bundle']} is not the bundle its record measured; trained again")
    if (record is None or stale or record.get("key") != pick["key"]
            or record.get("final_budget") != budget):
        changed = {t: v for t, v in budget.items() if t in FINAL_OVERRIDES}
        say(f"final training of {pick['name']}: {budget['fp32_epochs']} FP32 + {budget['aligned_epochs']} "
            f"aligned epochs" + (f", with {changed}" if changed else ""))
        record = evaluate_candidate(Genome.from_dict(pick["genome"]), final_cfg, data, out / "final")
        record.update(final_budget=budget, searched=_searched(best))
        # kept before it is judged: a comparison that ends in an error (its second stages' hil runs)
        # lost the training, the longest of the search, and the rerun trained it again
        write_json_atomic(path, record)
        record["compared"] = compare_final(best, record, cfg, out)
        write_json_atomic(path, record)
    elif _over_limit(record, cfg):
        pass  # not kept whatever a comparison says, so none is made again
    elif (record.get("compared") is None or record.get("searched", {}).get("bundle") != best["bundle"]
          or not _compared_as_configured(record["compared"], cfg)):
        # the same training judged against another flight candidate, under another second stage
        # or on rows older code made: judged again, not retrained
        say("final training: judged again (the candidate it is compared with, the second stage "
            "([export] discriminate) or its rows have changed)")
        record.update(searched=_searched(best), compared=compare_final(best, record, cfg, out))
        write_json_atomic(path, record)
    # said as a failure, not as a comparison the final network lost
    if record.get("status") in ("failed", "infeasible"):
        say(f"final training of {record['name']} {record.get('status')}: {record.get('reason')}; the flight model "
            f"is the searched one ({path}; a changed [final] recipe trains it again)")
        return best
    if _over_limit(record, cfg):
        say(f"final training: its network takes {latency_ms(record, cfg['fitness']['latency']):.1f} ms, over "
            f"[fitness] latency_limit_ms = {cfg['fitness']['latency_limit_ms']}; the flight model is the searched one")
        return best
    compared = record["compared"]
    # a network for which no second stage could be fitted (None) cannot fly the config's flight model
    kept = compared["final"] is not None and (compared["searched"] is None or compared["final"] >= compared["searched"])
    say(f"final training of {record['name']}: {compared['by']} {compared['final']} against "
        f"{compared['searched']} for {best['name']} as searched; the flight model is the "
        f"{'final' if kept else 'searched'} one")
    return record if kept else best


def _measured_bundle_is_there(record: dict[str, Any]) -> bool:
    """Whether a final record's bundle is still the one its figures were measured on (by its id, which
    the hil report names): a training of another budget of the same genome, killed after it rewrote
    the folder and before its own record, leaves another network there."""
    measured = (record.get("device_metrics") or {}).get("bundle_sha256")
    if measured is None or not record.get("bundle"):
        return True  # a failed training: nothing was measured, nothing is shipped from it
    try:
        return read_bundle(record["bundle"]).id == measured
    except (BundleError, OSError):
        return False


def _searched(best: dict[str, Any]) -> dict[str, Any]:
    """What a final record keeps of the flight candidate it was compared with."""
    return {"key": best["key"], "name": best["name"], "fitness": best["fitness"], "bundle": best["bundle"],
            "trained_under": best["training"]["trained_under"]}


def _over_limit(record: dict[str, Any], cfg: dict[str, Any]) -> bool:
    """Whether a scored final training's network is over ``[fitness] latency_limit_ms``."""
    return record.get("fitness") is not None and not within_limit(record, cfg["fitness"])


#: What "the candidates' gate" is (:func:`final_config`): the gate, the land loss it learns from
#: (without which a gate cannot train), how that loss is computed, and the sea shift of its export.
GATE_SETTINGS = (("train", "land_gate"), ("train", "land_weight"), ("train", "gate_loss"), ("train", "land_focus"),
                 ("export", "sea_shift"))


def final_config(cfg: dict[str, Any], candidates_gate: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config a candidate is trained under for the final training, and the budget that names it
    (the ``[final]`` epochs and its ``[final.train]`` / ``[final.export]`` settings).

    ``candidates_gate``: the final recipe with the candidates' land gate in place of its own
    (``[final] over_limit = "drop_gate"``): the gate and how it learns (``[train]`` settings of
    :data:`GATE_SETTINGS`) and its sea shift (``[export] sea_shift``).

    One place for the recipe, so that anything that retrains the flight model's recipe (the search,
    ``scripts/seed_study.py --final``) trains the same thing.
    """
    epochs = {k: int(cfg["final"][k]) for k in ("fp32_epochs", "aligned_epochs")}
    # the recipe's own settings ([final.train], [final.export]) only where there are any, so a
    # record from before they existed still matches a config without them
    changed = {t: copy.deepcopy(cfg["final"][t]) for t in FINAL_OVERRIDES if cfg["final"].get(t)}
    if candidates_gate:
        for table, key in GATE_SETTINGS:
            if key in changed.get(table, {}):
                changed[table][key] = cfg[table][key]
    final_cfg = copy.deepcopy(cfg)
    final_cfg["candidate"].update(epochs)
    for table, settings in changed.items():
        final_cfg[table].update(settings)
    return final_cfg, epochs | changed


def compare_final(best: dict[str, Any], final: dict[str, Any], cfg: dict[str, Any], out: Path) -> dict[str, Any]:
    """What decides between the searched candidate and its final training, on validation only: the
    fitness; or, when the flight model flies a second stage (``[export] discriminate``), the
    validation F1 each reaches with its own, fitted the same way (the cuts the fitness was measured
    with are replaced by it). A network whose candidates hold no ship (or nothing else) gets no second
    stage: its F1 is None, with the reason under ``unfitted``, and it loses (a tiny final network that
    finds no ship ended the whole search here, and every rerun with it). Latency is not judged here:
    :func:`final_training` holds both to the limit."""
    if final.get("fitness") is None:
        return {"by": BY_FITNESS, "searched": best["fitness"], "final": None}
    if not cfg["export"].get("discriminate"):
        return {"by": BY_FITNESS, "searched": best["fitness"], "final": final["fitness"]}
    from search.discriminate import NoBothKinds, discriminate, stage_score

    cut_by = cfg["export"]["discriminator_cut_by"]

    scores: dict[str, float | None] = {}
    unfitted: dict[str, str] = {}
    for tag, record in (("searched", best), ("final", final)):
        root = out / "final" / "second_stage" / tag
        shutil.rmtree(root, ignore_errors=True)
        try:
            fit = discriminate(Path(record["bundle"]), out / "data" / "split.json", root / "bundle", root / "work",
                               device=record["device_metrics"]["device"], fits=out / FITS,
                               kind=cfg["export"]["discriminator_kind"], cut_by=cut_by)
            scores[tag] = stage_score(fit)
        except NoBothKinds as err:  # this network cannot fly a second stage: it loses, the search goes on
            scores[tag], unfitted[tag] = None, str(err)
    return {"by": _by_second_stage(cut_by), "kind": cfg["export"]["discriminator_kind"], "rows": _rows_version(),
            **scores,
            **({"unfitted": unfitted} if unfitted else {})}


#: How :func:`compare_final` judges without a second stage (or when the final training failed); any
#: other ``by`` is a comparison with second stages.
BY_FITNESS = "validation fitness"

#: How :func:`compare_final` judges when the flight model flies a second stage whose cut is chosen
#: by F1 (``[export] discriminator_cut_by``; :func:`_by_second_stage` for the others).
BY_SECOND_STAGE = "validation F1 with its own second stage"


def _by_second_stage(cut_by: str) -> str:
    """What :func:`compare_final` compares with a second stage: what its cut was chosen for."""
    return BY_SECOND_STAGE if cut_by == "f1" else f"validation {cut_by.replace('+', ' + ')} with its own second stage"


def _compared_as_configured(compared: dict[str, Any], cfg: dict[str, Any]) -> bool:
    """Whether a stored comparison was made the way ``cfg`` would make it now: a resumed search whose
    ``[export] discriminate`` or ``discriminator_kind`` changed must not ship on the old verdict."""
    by_stage = compared.get("by") != BY_FITNESS
    if compared.get("final") is None and not by_stage:
        return True  # the final training failed: nothing to judge, whatever the second stage
    if cfg["export"].get("discriminate"):
        return (compared.get("by") == _by_second_stage(cfg["export"]["discriminator_cut_by"])
                and compared.get("kind") == cfg["export"]["discriminator_kind"]
                and compared.get("rows") == _rows_version())
    return not by_stage


def _rows_version() -> int:
    """The version of the second stage's training rows (``search.discriminate.ROWS_VERSION``),
    imported only where a second stage flies: a comparison made on older rows is made again."""
    from search.discriminate import ROWS_VERSION

    return ROWS_VERSION


#: Second stages fitted in a search (search.discriminate's ``fits``): the flight model reuses the one
#: :func:`compare_final` fitted for the same network, and a resumed search fits none again.
FITS = Path("discriminate") / "fits"


def drop_flight_model(out: Path) -> None:
    """Remove ``out/flight_model`` and its checks: a run that has no flight model (none within the
    latency limit, a second stage that could not be fitted) leaves none of an earlier run's to ship."""
    shutil.rmtree(out / "flight_model", ignore_errors=True)
    shutil.rmtree(out / "report" / "flight_model_hil", ignore_errors=True)
    (out / "report" / "flight_model_check.json").unlink(missing_ok=True)


def add_second_stage(out: Path, device: str, kind: str, say: Any, cut_by: str = "f1") -> None:
    """Give ``out/flight_model`` its second stage (``[export] discriminate``), fitted on the
    search's own split: training candidates, cut on validation, the test split never read. When it
    cannot be fitted, the flight model is removed (the config's has a second stage) and the error
    raised."""
    from search.discriminate import discriminate

    staged = out / "flight_model.discriminated"
    shutil.rmtree(staged, ignore_errors=True)
    # run_search refused the setting without a real source, so prepare_data wrote this split
    try:
        record = discriminate(out / "flight_model", out / "data" / "split.json", staged, out / "discriminate",
                              device=device, fits=out / FITS, kind=kind, cut_by=cut_by)
    except Exception:
        drop_flight_model(out)
        raise
    shutil.rmtree(out / "flight_model")
    staged.rename(out / "flight_model")
    # a fit stored before the outlines were recorded (chosen by F1, its key unchanged) has F1 only
    outlines = ("" if "val_outline_iou" not in record else
                f", outline IoU {record['val_outline_iou']:.3f} (the search's cuts: "
                f"{record['val_outline_iou_cuts_replaced']:.3f})")
    say(f"second stage: validation F1 {record['val_f1']:.3f} at cut {record['cut']}, chosen by "
        f"{record.get('cut_by', 'f1')} (the search's cuts: {record['val_f1_cuts_replaced']:.3f}){outlines}")
