"""The search's configuration: ``search/defaults.toml`` with a user TOML merged over it.

Every command of ``python -m search`` loads it once here and hands each callee the tables it needs;
an unknown key in the user's TOML is an error (:func:`runtime.config.merge_into`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from runtime.config import check_number, load_defaults, merge_into, tomllib

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")

#: Tables of the candidates' recipe that ``[final.TABLE]`` may override for the final training.
FINAL_OVERRIDES = ("train", "export")
#: Keys of [train] and [export] that the final training does not read from [final.train] and
#: [final.export], and what sets them there: accepted, they would say a budget or a stage that is
#: not the one trained.
NOT_IN_FINAL = {"train": {"epochs": "[final] fp32_epochs", "seed": "[evolution] seed"},
                "export": {"discriminate": "[export] discriminate",
                           "discriminator_kind": "[export] discriminator_kind"}}


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
    check_values(cfg)
    return cfg


#: Integer settings and their least value: anything smaller is accepted by TOML but breaks the search
#: later (an untrained candidate shipped with a nan loss, a crash after the first generation).
#: ``[candidate] aligned_epochs = 0`` is FP32 only; ``[final] fp32_epochs = 0`` is no final training.
_AT_LEAST = {
    "train": {"epochs": 1, "steps_per_epoch": 1, "batch": 1, "patch": 1},
    "export": {"tile": 1},
    "candidate": {"fp32_epochs": 1, "aligned_epochs": 0},
    "evolution": {"population": 1, "generations": 1, "tournament": 1, "elite": 0, "novelty_tries": 0},
    "final": {"fp32_epochs": 0, "aligned_epochs": 0},
    "run": {"workers": 1},
}
#: Settings that are probabilities.
_FRACTIONS = {"evolution": ("crossover_rate", "mutation_rate")}


def _check_table(table: dict[str, Any], name: str, where: str) -> None:
    for key, least in _AT_LEAST.get(name, {}).items():
        if key not in table:
            continue
        check_number(f"[{where}] {key}", table[key], least, integer=True)
    for key in _FRACTIONS.get(name, ()):
        check_number(f"[{where}] {key}", table.get(key, 0.0), 0.0, high=1.0)


def check_values(cfg: dict[str, Any]) -> None:
    """Refuse values the search would accept now and fail on (or silently mistrain with) later.

    Checks the integer settings of :data:`_AT_LEAST`, the rates of :data:`_FRACTIONS` and
    ``[evolution] elite`` <= ``population``, and the same rules for the final training's tables
    (``[final.train]``, ``[final.export]`` over ``[train]``, ``[export]``).

    Raises:
        ValueError: naming the setting, e.g. ``[evolution] tournament must be an integer >= 1; got 0``.
    """
    for name in _AT_LEAST.keys() | _FRACTIONS.keys():
        if isinstance(cfg.get(name), dict):
            _check_table(cfg[name], name, name)
    evo = cfg.get("evolution", {})
    if "elite" in evo and "population" in evo and evo["elite"] > evo["population"]:
        raise ValueError(f"[evolution] elite must be within [0, population = {evo['population']}]; got {evo['elite']}")
    final = cfg.get("final", {})
    for table in FINAL_OVERRIDES:
        if final.get(table):
            _check_table({**cfg.get(table, {}), **final[table]}, table, f"final.{table}")
