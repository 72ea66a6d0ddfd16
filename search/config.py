"""The search's configuration: ``search/defaults.toml`` with a user TOML merged over it.

Every command of ``python -m search`` loads it once here and hands each callee the tables it needs;
an unknown key in the user's TOML is an error (:func:`runtime.config.merge_into`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from runtime.config import load_defaults, merge_into, tomllib

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")

#: Tables of the candidates' recipe that ``[final.TABLE]`` may override for the final training.
FINAL_OVERRIDES = ("train", "export")


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
        cfg["final"][table] = override
    return cfg
