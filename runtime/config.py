"""Configuration: every default lives in one TOML file per package, overridable by a user TOML.

The runtime's own defaults are in ``runtime/defaults.toml``; flightsim, hil and search keep theirs
beside their code and load them through :func:`load_defaults` so there is one mechanism.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the OpenVINO 2022.3 environment runs Python 3.10
    import tomli as tomllib

_CACHE: dict[Path, dict[str, Any]] = {}


def load_defaults(path: Path, override: Path | None = None) -> dict[str, Any]:
    """Read a package's ``defaults.toml`` and merge a user TOML over it (tables merge key by key).

    Raises:
        ValueError: if the override names a key that the defaults do not have, so that a typo in
            a configuration file is an error rather than a silently ignored setting.
    """
    path = Path(path)
    if path not in _CACHE:
        with open(path, "rb") as f:
            _CACHE[path] = tomllib.load(f)
    merged = copy.deepcopy(_CACHE[path])
    if override is not None:
        with open(override, "rb") as f:
            merge_into(merged, tomllib.load(f), str(override))
    return merged


def merge_into(base: dict[str, Any], new: dict[str, Any], where: str) -> None:
    """Merge ``new`` over ``base`` in place, table by table; an unknown key is a ValueError."""
    for key, value in new.items():
        if key not in base:
            raise ValueError(f"{where}: unknown setting {key!r}; valid: {sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            merge_into(base[key], value, f"{where}:{key}")
        else:
            base[key] = value


def defaults(override: Path | None = None) -> dict[str, Any]:
    """The runtime's defaults (``runtime/defaults.toml``), with an optional user override."""
    return load_defaults(Path(__file__).with_name("defaults.toml"), override)
