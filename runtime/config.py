"""Configuration: every default lives in one TOML file per package, overridable by a user TOML.

The runtime's own defaults are in ``runtime/defaults.toml``; flightsim, hil and search keep theirs
beside their code and load them through :func:`load_defaults` so there is one mechanism.
"""

from __future__ import annotations

import argparse
import copy
import math
import numbers
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
            a configuration file is an error rather than a silently ignored setting; and if the
            override cannot be read (missing, a directory, unreadable), naming ``--config``, so
            that every command line prints one ``error:`` line rather than a traceback.
    """
    path = Path(path)
    if path not in _CACHE:
        with open(path, "rb") as f:
            _CACHE[path] = tomllib.load(f)
    merged = copy.deepcopy(_CACHE[path])
    if override is not None:
        try:
            with open(override, "rb") as f:
                text = f.read()
        except OSError as exc:
            raise ValueError(f"--config {override}: {exc.strerror}") from None
        try:  # else the parser's words alone ("Expected '=' after a key"), naming no file
            table = tomllib.loads(text.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"--config {override}: not valid TOML: {exc}") from None
        merge_into(merged, table, str(override))
    return merged


def merge_into(base: dict[str, Any], new: dict[str, Any], where: str) -> None:
    """Merge ``new`` over ``base`` in place, table by table; an unknown key is a ValueError."""
    for key, value in new.items():
        if key not in base:
            raise ValueError(f"{where}: unknown setting {key!r}; valid: {sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict):
            merge_into(base[key], value, f"{where}:{key}")
        elif isinstance(base[key], dict):  # else found later as a TypeError far from the file
            raise ValueError(f"{where}: {key!r} is a table ([{key}] with keys {sorted(base[key])}), "
                             f"not a value ({value!r})")
        else:
            base[key] = value


def defaults(override: Path | None = None) -> dict[str, Any]:
    """The runtime's defaults (``runtime/defaults.toml``), with an optional user override."""
    return load_defaults(Path(__file__).with_name("defaults.toml"), override)


def check_number(name: str, value: Any, low: float, *, integer: bool = False, strict: bool = False,
                 high: float | None = None) -> Any:
    """``value`` of the setting ``name`` (e.g. ``"[run] window"``) if it is a number in its range, as
    an int where ``integer``, else a float; otherwise a ValueError naming the setting and the range.

    The one range check of every package's settings: a TOML value of the wrong type or out of range
    is refused when it is loaded, not found later where it breaks. ``strict`` excludes ``low``
    itself; ``high`` (included) bounds the value above; a bool is not a number here.
    """
    opening = "(" if strict else "["
    if integer:
        wanted = f"an integer in {opening}{low:g}, {high:g}]" if high is not None else \
            f"an integer {'>' if strict else '>='} {low:g}"
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (strict and value == low) \
                or (high is not None and value > high):
            raise ValueError(f"{name} must be {wanted}; got {value!r}")
        return value
    wanted = f"a number in {opening}{low:g}, {high:g}]" if high is not None else \
        f"a finite number {'>' if strict else '>='} {low:g}" if math.isfinite(low) else "a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {wanted}; got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < low or (strict and number == low) or (high is not None and number > high):
        raise ValueError(f"{name} must be {wanted}; got {value!r}")
    return number


def check_count(name: str, value: Any, low: int = 1) -> int:
    """``value`` of the argument ``name`` if it is an integer >= ``low``, as an int; else the ValueError
    of :func:`check_number`.

    For counts given from Python rather than read from a TOML (``Streamer(window=...)``, ``Timing(burst=...)``):
    a numpy integer (a window taken from an array) is an integer there too, turned into an int before
    :func:`check_number`, which takes Python ints only. A bool is still refused.
    """
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)  # numpy ints too
    return check_number(name, int(value) if integral else value, low, integer=True)


def positive_int(text: str) -> int:
    """An argparse ``type`` for an option that counts something (``--window``, ``--tile-size``,
    ``--burst``, ``--per-kind``): an int >= 1, else argparse's usage error saying so. 0 is refused, not
    taken for "not given" (a caller compares the option with None to use its default)."""
    try:
        return check_number("the value", int(text), 1, integer=True)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None


def positive_float(text: str) -> float:
    """An argparse ``type`` for a duration or a period (``--minutes``, ``--sample-s``): a finite number
    > 0, else argparse's usage error (a zero period divides by zero, a zero run tests nothing)."""
    return _float_argument(text, strict=True)


def non_negative_float(text: str) -> float:
    """An argparse ``type`` for a duration that may be none (``--warmup-s``): a finite number >= 0."""
    return _float_argument(text, strict=False)


def _float_argument(text: str, strict: bool) -> float:
    try:
        return float(check_number("the value", float(text), 0.0, strict=strict))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number {'>' if strict else '>='} 0, got {text!r}") from None


#: Transports of the endpoints a payload binds and its grounds connect to (inproc cannot leave a process).
TRANSPORTS = ("tcp://", "ipc://")


def is_endpoint(endpoint: Any) -> bool:
    """Whether ``endpoint`` is TRANSPORT://ADDRESS with a transport of :data:`TRANSPORTS`, and a tcp
    port, where it is a number, in 0-65535."""
    return (isinstance(endpoint, str) and endpoint.startswith(TRANSPORTS) and not endpoint.endswith("://")
            and _tcp_port_error(endpoint) is None)


def _tcp_port_error(endpoint: str) -> str | None:
    """Why a tcp ``endpoint``'s numeric port is out of range, else None. ZeroMQ takes a port modulo
    65536: ``tcp://127.0.0.1:99999`` bound port 34463 and ``:-5`` port 65531, with no error."""
    port = endpoint.rsplit(":", 1)[-1] if endpoint.startswith("tcp://") else ""
    if port.lstrip("-").isdigit() and not 0 <= int(port) <= 65535:
        return f"port {port} is not in 0-65535 (ZeroMQ would take it modulo 65536: port {int(port) % 65536})"
    return None


def check_endpoint(option: str, endpoint: Any, example: str) -> None:
    """Refuse an ``endpoint`` (the setting or flag ``option``) that is no ZeroMQ endpoint, such as
    ``127.0.0.1:5550`` without ``tcp://``, before ZeroMQ answers it with "Invalid argument"."""
    port_error = _tcp_port_error(endpoint) if isinstance(endpoint, str) else None
    if port_error is not None:
        raise ValueError(f"{option} {endpoint!r}: {port_error}; e.g. {example}")
    if not is_endpoint(endpoint):
        raise ValueError(f"{option} {endpoint!r} is not a ZeroMQ endpoint; give TRANSPORT://ADDRESS with a transport "
                         f"of {list(TRANSPORTS)}, e.g. {example}")
