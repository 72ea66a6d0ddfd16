"""The search's configuration: ``search/defaults.toml`` with a user TOML merged over it.

Every command of ``python -m search`` loads it once here and hands each callee the tables it needs;
an unknown key in the user's TOML is an error (:func:`runtime.config.merge_into`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.config import load_defaults

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")


def load_config(path: Path | None = None) -> dict[str, Any]:
    """search's defaults (``search/defaults.toml``), with an optional user TOML merged over them."""
    return load_defaults(DEFAULTS_PATH, path)
