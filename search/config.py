"""The search's configuration: ``search/defaults.toml`` with a user TOML merged over it.

Every command of ``python -m search`` loads it once here and hands each callee the tables it needs;
an unknown key in the user's TOML is an error (:func:`runtime.config.merge_into`).
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from typing import Any, Callable

from runtime.config import check_number, load_defaults, merge_into, tomllib

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")

#: Tables of the candidates' recipe that ``[final.TABLE]`` may override for the final training.
FINAL_OVERRIDES = ("train", "export")
#: Keys of [train] and [export] that the final training does not read from [final.train] and
#: [final.export], and what sets them there: accepted, they would say a budget or a stage that is
#: not the one trained.
NOT_IN_FINAL = {"train": {"epochs": "[final] fp32_epochs", "seed": "[evolution] seed"},
                "export": {"discriminate": "[export] discriminate",
                           "discriminator_kind": "[export] discriminator_kind",
                           "discriminator_cut_by": "[export] discriminator_cut_by"}}


#: How the second stage's cut is chosen on the validation candidates: by object F1 alone, or by object
#: F1 plus the pooled vessel IoU of the outlines it keeps. F1 alone counts a ship's outline that
#: matches at IoU 0.4 (a large ship merged with its quay, a fragment of one) as a false alarm, so its
#: best cut is often the one just past such a ship, and the ship's pixels leave the outlines with it
#: (docs/models.md, "The second stage's cut and the outlines").
CUT_BY = ("f1", "f1+outline_iou")


def check_cut_by(cut_by: str, what: str = "discriminator cut_by") -> str:
    """``cut_by`` if it is one of :data:`CUT_BY`; a ValueError listing them otherwise."""
    if cut_by not in CUT_BY:
        raise ValueError(f"{what} must be one of {CUT_BY}; got {cut_by!r}")
    return cut_by


def load_config(path: Path | None = None) -> dict[str, Any]:
    """search's defaults (``search/defaults.toml``), with an optional user TOML merged over them.

    ``[final.train]`` and ``[final.export]`` hold any keys of ``[train]`` and ``[export]`` (the final
    training's own settings), so they are checked against those tables rather than against their
    empty defaults: an unknown key is an error there too.
    """
    cfg = load_defaults(DEFAULTS_PATH)
    if path is None:
        return cfg
    with open(path, "rb") as f:
        user = tomllib.load(f)
    overrides = {t: user.get("final", {}).pop(t, {}) for t in FINAL_OVERRIDES}
    merge_into(cfg, user, str(path))
    for table, override in overrides.items():
        merge_into(copy.deepcopy(cfg[table]), override, f"{path}:final.{table}")
        for key in override:
            if key in NOT_IN_FINAL.get(table, {}):
                raise ValueError(f"{path}: [final.{table}] {key} has no effect on the final training; "
                                 f"set {NOT_IN_FINAL[table][key]} instead")
        cfg["final"][table] = override
    # over_limit only when given (its default is there either way); check_values checks the rest again
    _check_final_is_trained(cfg["final"], ("over_limit",) if "over_limit" in user.get("final", {}) else ())
    check_values(cfg)
    return cfg


#: Integer settings and their least value: anything smaller is accepted by TOML but breaks the search
#: later (an untrained candidate shipped with a nan loss, a crash after the first generation).
#: ``[candidate] aligned_epochs = 0`` is FP32 only; ``[final] fp32_epochs = 0`` is no final training.
_AT_LEAST = {
    "train": {"epochs": 1, "steps_per_epoch": 1, "batch": 1, "patch": 1},
    "export": {"tile": 1},
    "candidate": {"fp32_epochs": 1, "aligned_epochs": 0},
    "data": {"train_scenes": 1, "val_scenes": 1, "train_scene_size": 1, "val_scene_size": 1,
             "train_seed_start": 0, "val_seed_start": 0, "min_seed": 0},
    "model": {"in_channels": 1},
    "space": {"max_parameters": 1, "max_downsamples": 0, "min_blocks": 1, "max_blocks": 1},
    "evolution": {"population": 1, "generations": 1, "tournament": 1, "elite": 0, "novelty_tries": 0},
    "final": {"fp32_epochs": 0, "aligned_epochs": 0},
    "run": {"workers": 1},
}
#: Number settings: (least, most or None, strict: the least itself refused). A string, a negative
#: learning rate, a latency target of 0 or a fraction past 1 would otherwise train, or divide, and
#: fail (or mislead) later. val_fraction > 0 where a data set is split: :func:`check_values`.
_NUMBERS: dict[str, dict[str, tuple[float, float | None, bool]]] = {
    "data": {"split_seed": (0, None, False), "val_fraction": (0, 1, False), "test_fraction": (0, 1, False)},
    "train": {"seed": (0, None, False), "lr": (0, None, True), "weight_decay": (0, None, False),
              "dice_weight": (0, None, False), "land_weight": (0, None, False), "land_focus": (0, None, False),
              "threads": (1, None, False), "vessel_fraction": (0, 1, False), "hard_negative_fraction": (0, 1, False)},
    "export": {"check_tolerance": (0, None, True), "sea_shift": (-math.inf, None, False)},
    "candidate": {"aligned_lr_scale": (0, None, True), "range_penalty": (0, None, False)},
    "evolution": {"seed": (0, None, False), "crossover_rate": (0, 1, False), "mutation_rate": (0, 1, False)},
    "fitness": {"latency_target_ms": (0, None, True), "latency_weight": (0, None, False),
                "size_weight": (0, None, False)},
}
#: Integer settings among :data:`_NUMBERS`.
_INTEGERS = {"split_seed", "seed", "threads"}


def _probability(name: str, value: Any, *, zero: bool) -> None:
    """A probability strictly below 1, and above 0 unless ``zero``."""
    try:
        number = check_number(name, value, 0.0, strict=not zero)
    except ValueError:
        number = math.nan
    if not (number < 1.0):
        raise ValueError(f"{name} must be a number in {'[' if zero else '('}0, 1); got {value!r}")


def _string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string; got {value!r}")


def _count(least: int) -> Callable[[str, Any], None]:
    return lambda name, value: check_number(name, value, least, integer=True)


#: List settings: (what each item must be, whether the list may be empty). TOML accepts a string
#: where a list is meant, which would then be read character by character.
_LISTS: dict[str, dict[str, tuple[Callable[[str, Any], None], bool]]] = {
    "data": {"source_weights": (lambda n, v: check_number(n, v, 0.0), True), "source_roles": (_string, True)},
    "train": {"augment": (_string, True)},
    "export": {"thresholds": (functools.partial(_probability, zero=False), False),
               "min_areas_px": (_count(0), False),
               "min_scores": (functools.partial(_probability, zero=True), False), "bands": (_string, False)},
    "candidate": {"robust_profiles": (_string, True)},
    "model": {"widths": (_count(1), False)},
    "space": {"kinds": (_string, False), "widths": (_count(1), False), "expansions": (_count(1), False),
              "upsamplings": (_string, False)},
}
#: Names (which of them is valid is checked where each is used, listing the valid ones) and switches:
#: a number where a name is meant gave a TypeError deep in the search, and a string such as "no"
#: where true or false is meant switched a stage on.
_STRINGS = {"data": ("modality", "land_masks", "normalization_scale", "scene_dtype", "scene_mode"),
            "train": ("land_gate", "gate_loss"),
            "export": ("input_dtype", "discriminator_kind", "discriminator_cut_by"),
            "candidate": ("profile", "hil_device", "check_target", "torch_device"), "final": ("over_limit",),
            "fitness": ("accuracy", "latency"), "run": ("ray_address",), "ablate": ("upsample",)}
_BOOLEANS = {"export": ("choose_postprocessing", "discriminate"), "data": ("shifted_twins", "val_twins")}


def _check_list(name: str, value: Any, item: Callable[[str, Any], None], may_be_empty: bool) -> None:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list (e.g. [{value!r}]); got {value!r}")
    if not value and not may_be_empty:
        raise ValueError(f"{name} must not be empty")
    for i, entry in enumerate(value):
        item(f"{name}[{i}]", entry)


def _check_table(table: dict[str, Any], name: str, where: str) -> None:
    for key, least in _AT_LEAST.get(name, {}).items():
        if key not in table:
            continue
        check_number(f"[{where}] {key}", table[key], least, integer=True)
    for key, (least, most, strict) in _NUMBERS.get(name, {}).items():
        if key in table:
            check_number(f"[{where}] {key}", table[key], least, integer=key in _INTEGERS, strict=strict, high=most)
    for key, (item, may_be_empty) in _LISTS.get(name, {}).items():
        if key in table:
            _check_list(f"[{where}] {key}", table[key], item, may_be_empty)
    for key in _STRINGS.get(name, ()):
        if key in table:
            _string(f"[{where}] {key}", table[key])
    for key in _BOOLEANS.get(name, ()):
        if key in table and not isinstance(table[key], bool):
            raise ValueError(f"[{where}] {key} must be true or false; got {table[key]!r}")


def _implied_modalities(source: str | list[str], scene_mode: str) -> set[str]:
    """The modalities the formats of ``[data] source`` say their data is (HRSID: SAR; synthetic
    scenes: their mode, ``[data] scene_mode`` for ``"synthetic"``); a format that does not say
    (COCO, GeoTIFF) adds none."""
    from flightsim.sources import parse_spec
    from hil.fit import MODALITY_OF_KIND
    from runtime.fit import MODALITIES

    implied = set()
    for spec in [source] if isinstance(source, str) else source:
        kind, rest = parse_spec(spec)
        if kind == "synthetic":
            options = dict(o.split("=", 1) for o in rest.split(",") if "=" in o)
            implied.add(options.get("mode", scene_mode if spec == "synthetic" else "optical").strip())
        elif kind in MODALITY_OF_KIND:
            implied.add(MODALITY_OF_KIND[kind])
    return implied & set(MODALITIES)  # a mode that is none of them is refused by its own check


def _check_final_is_trained(final: dict[str, Any], given: tuple[str, ...] = ()) -> None:
    """Refuse final-training settings under ``[final] fp32_epochs = 0`` (no final training), which
    would otherwise be silently ignored: a non-empty ``[final.train]`` or ``[final.export]``, an
    ``aligned_epochs`` above 0, and the keys of ``given`` (those the user's TOML set).

    Raises:
        ValueError: naming the setting and ``[final] fp32_epochs``.
    """
    if final.get("fp32_epochs") != 0:
        return
    ignored = [f"[final.{t}] {', '.join(sorted(final[t]))}" for t in FINAL_OVERRIDES
               if isinstance(final.get(t), dict) and final[t]]
    if final.get("aligned_epochs"):
        ignored.append(f"[final] aligned_epochs = {final['aligned_epochs']}")
    ignored += [f"[final] {key}" for key in given]
    if ignored:
        raise ValueError(f"{'; '.join(ignored)} would have no effect: [final] fp32_epochs = 0 is no final "
                         f"training; set [final] fp32_epochs >= 1 to train the final network, or remove them")


def check_values(cfg: dict[str, Any]) -> None:
    """Refuse values the search would accept now and fail on (or silently mistrain with) later.

    Checks the integer settings of :data:`_AT_LEAST`, the numbers of :data:`_NUMBERS`, the lists of
    :data:`_LISTS`, the types of :data:`_STRINGS` and :data:`_BOOLEANS`, ``[data] source``,
    ``[evolution] elite`` <= ``population``, ``[data] gsd_m`` (as a manifest's ``trained_for``
    holds it), ``source_weights`` not all 0 (nor on every set that trains), no ``source_roles`` or
    ``source_weights`` with a ``"synthetic"`` source (which ignores them), and
    ``[train] land_weight`` only with ``[data] land_masks``, and the same rules for the final
    training's tables (``[final.train]``, ``[final.export]`` over ``[train]``, ``[export]``).

    Raises:
        ValueError: naming the setting, e.g. ``[evolution] tournament must be an integer >= 1; got 0``.
    """
    for name in _AT_LEAST.keys() | _NUMBERS.keys() | _LISTS.keys() | _STRINGS.keys() | _BOOLEANS.keys():
        if isinstance(cfg.get(name), dict):
            _check_table(cfg[name], name, name)
    channels = cfg.get("model", {}).get("in_channels")
    final_export = cfg.get("final", {}).get("export") or {}
    for where, export in (("export", cfg.get("export", {})), ("final.export", final_export)):
        bands = export.get("bands")
        if isinstance(bands, list) and isinstance(channels, int) and len(bands) != channels:
            raise ValueError(f"[{where}] bands names {len(bands)} bands ({bands}) but [model] in_channels is "
                             f"{channels}: each model's manifest names its input's bands, one per channel")
    evo = cfg.get("evolution", {})
    if "elite" in evo and "population" in evo and evo["elite"] > evo["population"]:
        raise ValueError(f"[evolution] elite must be within [0, population = {evo['population']}]; got {evo['elite']}")
    final = cfg.get("final", {})
    _check_final_is_trained(final)
    for table in FINAL_OVERRIDES:
        if final.get(table):
            _check_table({**cfg.get(table, {}), **final[table]}, table, f"final.{table}")
    data = cfg.get("data", {})
    if "gsd_m" in data:
        from runtime.fit import check_trained_for

        try:  # the manifest's trained_for, refused here rather than when the first model is written
            check_trained_for({"modality": data.get("modality"), "gsd_m": data["gsd_m"]})
        except ValueError as exc:
            raise ValueError(f"[data] {str(exc).removeprefix('trained_for.')}") from None
    source = data.get("source", "synthetic")
    if not (isinstance(source, str) or isinstance(source, list) and source and all(isinstance(p, str) for p in source)):
        raise ValueError(f"[data] source must be \"synthetic\", a data set as KIND:PATH, or a non-empty list of "
                         f"them; got {source!r}")
    if "modality" in data:  # what every model's manifest will say it was trained on (trained_for)
        said = sorted(_implied_modalities(source, data.get("scene_mode", "optical")) - {data["modality"]})
        if said:
            raise ValueError(f"[data] modality {data['modality']!r}, but the data's format says it is {said}: the "
                             f"models' manifests would call them unfit for their own scenes; set [data] modality "
                             f"(and gsd_m) to what the data is")
    roles = data.get("source_roles") or ["split"]
    if data.get("val_fraction") == 0 and "split" in roles:  # candidates are selected on validation samples
        raise ValueError(f"[data] val_fraction must be > 0 where a data set is split (source_roles {roles}); got 0")
    if data.get("source_weights") and not any(data["source_weights"]):
        raise ValueError(f"[data] source_weights must not all be 0; got {data['source_weights']}")
    if source == "synthetic":  # the seed ranges' scenes: one set, never split (search.dataset.seed_ranges)
        given = [k for k in ("source_roles", "source_weights") if data.get(k)]
        if given:
            raise ValueError(f"[data] {' and '.join(given)} apply to a real [data] source (KIND:PATH or a list of "
                             "them); [data] source is \"synthetic\", which would ignore them: remove them")
    weights = data.get("source_weights") or []
    if weights and len(data.get("source_roles") or []) == len(weights) \
            and not any(w for w, r in zip(weights, data["source_roles"]) if r in ("split", "train")):
        # a set held out whole (val, test) never trains: its weight draws nothing
        raise ValueError(f"[data] source_weights {weights} give weight 0 to every data set that trains "
                         f"(source_roles {data['source_roles']}: 'split' and 'train' sets train)")
    trains = (("train", cfg.get("train", {})), ("final.train", {**cfg.get("train", {}), **final.get("train", {})}))
    for where, train in trains:
        if train.get("land_weight") and not data.get("land_masks"):
            # without masks the land loss has nothing to learn from, and was silently left out
            raise ValueError(f"[{where}] land_weight = {train['land_weight']} needs [data] land_masks (a folder of "
                             f"<sample>.png sea/land masks); set it, or land_weight = 0")
