"""What a runtime is started with: runtime/defaults.toml (merged with ``--config``) as one typed,
frozen object, with the command line's overrides applied once.

Every default lives in defaults.toml; this module only gives them types and names, so there is no
second set of defaults to drift from the first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any, Mapping

from runtime.config import check_endpoint, check_number, is_endpoint
from runtime.vectorize import CONNECTIVITIES

#: What the CPU plugin may be told to compute in (``INFERENCE_PRECISION_HINT``); the runtime's is
#: ``[inference] cpu_precision``, f32, since the plugin's own default is bf16 where the CPU has it.
#: bf16 and f16 take effect only on CPUs with those units (AVX512_BF16/AMX, AVX512_FP16);
#: elsewhere the plugin computes in f32 whatever it is told.
CPU_PRECISIONS = ("f32", "bf16", "f16")


#: The ``simplify_px`` a serving runtime must stay below. Douglas-Peucker moves an outline by up to its
#: tolerance, each vessel's on its own (preserve_topology keeps one polygon valid, not two apart), and
#: two vessels can come as close as one pixel (8-connected components never touch): from half a pixel
#: each may reach half-way, so the two come down touching or overlapping, and the ground's merge
#: (:func:`runtime.merge.merge_detections`, as hil and any ground that joins border pieces run it)
#: reports them as one vessel. ``runtime infer`` simplifies after its merge, so any value is safe there.
SERVING_SIMPLIFY_LIMIT_PX = 0.5


def check_serving_simplify(simplify_px: float) -> float:
    """``simplify_px`` if a serving runtime may use it (below :data:`SERVING_SIMPLIFY_LIMIT_PX`),
    else a ValueError saying why (close vessels would be welded into one by the ground's merge)."""
    if simplify_px >= SERVING_SIMPLIFY_LIMIT_PX:
        raise ValueError(
            f"[vectorize] simplify_px must lie in [0, {SERVING_SIMPLIFY_LIMIT_PX}) for a serving runtime; got "
            f"{simplify_px!r}: simplified one by one, two vessels a pixel apart can come down touching, and the "
            "ground's merge (runtime.merge, hil) then reports them as one. runtime infer, which simplifies "
            "after its merge, takes any value")
    return simplify_px


def check_cpu_precision(cpu_precision: str) -> str:
    """``cpu_precision`` if it is one of :data:`CPU_PRECISIONS`, else a ``ValueError`` listing them."""
    if cpu_precision not in CPU_PRECISIONS:
        raise ValueError(f"cpu precision must be one of {list(CPU_PRECISIONS)}; got {cpu_precision!r}")
    return cpu_precision


#: The range of each numeric setting, by its [table] and key in defaults.toml (which says what each
#: means): (an integer?, the lowest value, whether the lowest itself is allowed). Out of range, a
#: setting would start a runtime that cannot work: max_tiles_inside = 0 never reads a tile, a
#: negative min_area_px or a zero period fails or spins later, on every tile, far from its cause.
RANGES: dict[tuple[str, str], tuple[bool, float, bool]] = {
    ("limits", "max_message_bytes"): (True, 1, True),
    ("limits", "max_tile_pixels"): (True, 1, True),
    ("limits", "max_tile_bands"): (True, 1, True),
    ("limits", "max_header_bytes"): (True, 1, True),
    ("limits", "results_hwm"): (True, 1, True),        # 0 would be ZeroMQ's "no limit": unbounded memory
    ("limits", "max_tiles_inside"): (True, 1, True),
    ("inference", "infer_requests"): (True, 0, True),  # 0: as many as the device suggests
    ("inference", "collect_group"): (True, 1, True),
    ("vectorize", "min_area_px"): (True, 0, True),
    ("vectorize", "simplify_px"): (False, 0.0, True),
    ("vectorize", "workers"): (True, 1, True),
    ("vectorize", "batch"): (True, 1, True),
    ("vectorize", "batch_wait_ms"): (False, 0.0, True),
    ("telemetry", "period_s"): (False, 0.0, False),
    ("delivery", "remember_tiles"): (True, 1, True),
    ("delivery", "shutdown_grace_s"): (False, 0.0, True),
    ("delivery", "ground_ack_timeout_s"): (False, 0.0, False),
    ("health", "period_s"): (False, 0.0, False),
    ("health", "hang_timeout_s"): (False, 0.0, False),
    ("health", "load_timeout_s"): (False, 0.0, False),
    ("device_recovery", "max_attempts"): (True, 1, True),
    ("device_recovery", "backoff_s"): (False, 0.0, True),
    ("device_recovery", "max_backoff_s"): (False, 0.0, True),
    ("device_recovery", "reopen_after"): (True, 1, True),
}
#: The highest value of a setting ZeroMQ takes as a C integer (ZMQ_SNDHWM an int, ZMQ_MAXMSGSIZE an
#: int64): above it, serve failed setting the socket option, an OverflowError traceback far from the file.
HIGHEST: dict[tuple[str, str], int] = {("limits", "results_hwm"): 2**31 - 1, ("limits", "max_message_bytes"): 2**63 - 1}
#: The type of each setting that is not a number, by its [table] and key: ``str``, ``bool`` (a TOML
#: boolean: ``bool("false")`` would be True) or ``list`` (of strings, e.g. ``curve_channels``: a string
#: would be taken character by character). Checked at load like :data:`RANGES`, so a quoted boolean,
#: a bare port number or a comma-separated string is refused naming the setting, not taken for
#: something else or failing later far from its cause.
KINDS: dict[tuple[str, str], type] = {
    **{("endpoints", name): str for name in ("tiles", "results", "control", "telemetry", "acks")},
    ("inference", "device"): str,
    ("inference", "cpu_precision"): str,
    ("inference", "profile"): str,
    ("inference", "cache_dir"): str,
    ("device_recovery", "fallback_device"): str,
    ("models", "store"): str,
    ("models", "strict_fit"): bool,
    ("security", "curve_server_secret"): str,
    ("security", "curve_authorized"): str,
    ("security", "curve_channels"): list,
    ("security", "uplink_public_key"): str,
    ("delivery", "ground_ack"): bool,
    ("health", "watchdog_file"): str,
}
#: Settings that are one non-numeric value of a table: the field, and its [table] key (the endpoints,
#: health and recovery tables are checked key by key).
_KIND_FIELDS = {"device": ("inference", "device"), "cpu_precision": ("inference", "cpu_precision"),
                "cache_dir": ("inference", "cache_dir"),
                "store": ("models", "store"), "strict_fit": ("models", "strict_fit"),
                "curve_server_secret": ("security", "curve_server_secret"),
                "curve_authorized": ("security", "curve_authorized"),
                "curve_channels": ("security", "curve_channels"),
                "uplink_public_key": ("security", "uplink_public_key"), "ground_ack": ("delivery", "ground_ack")}
#: Settings that are one numeric value of a table: the field, and its [table] key.
_FIELDS = {"max_message_bytes": ("limits", "max_message_bytes"), "max_tile_pixels": ("limits", "max_tile_pixels"),
           "max_tile_bands": ("limits", "max_tile_bands"),
           "max_header_bytes": ("limits", "max_header_bytes"), "results_hwm": ("limits", "results_hwm"),
           "max_tiles_inside": ("limits", "max_tiles_inside"), "infer_requests": ("inference", "infer_requests"),
           "collect_group": ("inference", "collect_group"), "telemetry_period_s": ("telemetry", "period_s"),
           "remember_tiles": ("delivery", "remember_tiles"),
           "shutdown_grace_s": ("delivery", "shutdown_grace_s"),
           "ground_ack_timeout_s": ("delivery", "ground_ack_timeout_s")}
#: Settings that are a whole table: the field, and the table.
_TABLES = {"vectorize": "vectorize", "health": "health", "recovery": "device_recovery"}


def check_setting(table: str, key: str, value: Any) -> int | float:
    """``value`` of ``[table] key`` if it is in :data:`RANGES` (an integer where one is needed, a
    finite number otherwise), as an int or a float; else a ValueError naming the setting and what
    is valid. ``[vectorize] connectivity`` must be one of :data:`runtime.vectorize.CONNECTIVITIES`."""
    name = f"[{table}] {key}"
    if (table, key) == ("vectorize", "connectivity"):
        if isinstance(value, bool) or value not in CONNECTIVITIES:
            raise ValueError(f"{name} must be one of {list(CONNECTIVITIES)}; got {value!r}")
        return int(value)
    integer, lowest, inclusive = RANGES[(table, key)]
    number = check_number(name, value, lowest, integer=integer, strict=not inclusive)
    highest = HIGHEST.get((table, key))
    if highest is not None and number > highest:
        raise ValueError(f"{name} must be at most {highest}, the largest its ZeroMQ socket option holds; got {value!r}")
    return number


def check_kind(table: str, key: str, value: Any) -> Any:
    """``value`` of ``[table] key`` if it is of the type :data:`KINDS` gives it, else a ValueError
    naming the setting, what it must be and what it got. A list of strings (``curve_channels``,
    a TOML array, or a tuple from the command line) is returned as a tuple."""
    kind, name = KINDS[(table, key)], f"[{table}] {key}"
    if kind is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of strings, e.g. [\"control\", \"tiles\"]; got {value!r}")
        return tuple(value)
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean, true or false (unquoted); got {value!r}")
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{name} must be a string (quoted); got {value!r}")
    return value


def _default_endpoint(name: str) -> str:
    """The shipped address of endpoint ``name`` (runtime/defaults.toml), the example an error gives."""
    from runtime.config import defaults

    return str(defaults()["endpoints"].get(name, "tcp://127.0.0.1:5550"))


def _checked_table(table: str, values: Mapping[str, Any]) -> MappingProxyType[str, Any]:
    """A table's values, each numeric one checked (:func:`check_setting`) and each other one's type
    (:func:`check_kind`), as a read-only view."""
    checked = dict(values)
    for (name, key) in KINDS:
        if name == table and key in checked:
            checked[key] = check_kind(table, key, checked[key])
    for (name, key) in (*RANGES, ("vectorize", "connectivity")):
        if name != table:
            continue
        if key not in checked:
            raise ValueError(f"[{table}] {key} is missing")
        checked[key] = check_setting(table, key, checked[key])
    return MappingProxyType(checked)


@dataclass(frozen=True)
class Settings:
    """The runtime's configuration (see runtime/defaults.toml for what each means)."""

    endpoints: Mapping[str, str]
    device: str
    profile: str | None                 # the twin's profile; None: the manifest's, else the twin's default
    cpu_precision: str
    infer_requests: int
    collect_group: int
    cache_dir: str                      # OpenVINO's model cache; "{store}" is the store's folder, "": none
    max_message_bytes: int
    max_tile_pixels: int
    max_tile_bands: int
    max_header_bytes: int
    results_hwm: int
    max_tiles_inside: int
    vectorize: Mapping[str, Any]
    store: str
    telemetry_period_s: float
    curve_server_secret: str
    curve_authorized: str
    curve_channels: tuple[str, ...]
    uplink_public_key: str
    remember_tiles: int
    shutdown_grace_s: float
    ground_ack: bool                    # results count as delivered only once the ground acks them
    ground_ack_timeout_s: float
    strict_fit: bool                    # reject tiles of a scene the model was not trained for
    health: Mapping[str, Any]
    recovery: Mapping[str, Any]

    def __post_init__(self) -> None:
        """Check every numeric setting against its range (:data:`RANGES`) and every other one's type
        (:data:`KINDS`), overrides included: a runtime that could not work, or would work other than
        configured (a quoted ``"false"`` taken as true), is refused at start, naming the setting.

        Raises:
            ValueError: naming the first setting out of range or of the wrong type, and what is valid,
                or a ``remember_tiles`` not above ``max_tiles_inside``.
        """
        for name, (table, key) in _KIND_FIELDS.items():
            object.__setattr__(self, name, check_kind(table, key, getattr(self, name)))
        from runtime.device_names import check_device_name, check_profile_device

        check_device_name("[inference] device (--device)", self.device)
        if self.profile is not None:
            check_kind("inference", "profile", self.profile)
            check_profile_device(self.device, self.profile)
        object.__setattr__(self, "endpoints", _checked_table("endpoints", self.endpoints))
        for name, address in self.endpoints.items():  # else ZeroMQ's bare "Invalid argument" at bind
            if not is_endpoint(address):  # the example (the shipped address) read only then
                check_endpoint(f"[endpoints] {name} (--{name})", address, _default_endpoint(name))
        for name, (table, key) in _FIELDS.items():
            object.__setattr__(self, name, check_setting(table, key, getattr(self, name)))
        for name, table in _TABLES.items():
            object.__setattr__(self, name, _checked_table(table, getattr(self, name)))
        check_cpu_precision(self.cpu_precision)
        if self.recovery["fallback_device"]:  # empty: none
            check_device_name("[device_recovery] fallback_device", self.recovery["fallback_device"])
        if self.remember_tiles <= self.max_tiles_inside:
            # Up to max_tiles_inside tiles are in flight, and the memory must hold them all beside at
            # least one done: else it forgets a tile in flight, and a resend of it is processed again.
            raise ValueError(f"[delivery] remember_tiles ({self.remember_tiles}) must be more than [limits] "
                             f"max_tiles_inside ({self.max_tiles_inside}): every tile in flight is remembered")

    @classmethod
    def from_config(cls, config: dict[str, Any], **overrides: Any) -> Settings:
        """``config`` is runtime/defaults.toml merged with a user TOML (:func:`runtime.config.defaults`);
        ``overrides`` (None: not given) are settings or endpoint names, e.g. ``device="CPU"``,
        ``tiles="ipc:///tmp/t"``, ``watchdog_file="..."`` (into ``health``).

        Raises:
            ValueError: for an override that names no setting, listing the valid ones, and for a
                setting out of its range (:data:`RANGES`), naming it and what is valid.
        """
        inference, limits, security, delivery = (config[k] for k in ("inference", "limits", "security", "delivery"))
        endpoints, health, changes = dict(config["endpoints"]), dict(config["health"]), {}
        names = {f.name for f in fields(cls)}
        for key, value in overrides.items():
            if value is None:
                continue
            if key in endpoints:
                endpoints[key] = value
            elif key in health:
                health[key] = value
            elif key in names:
                changes[key] = value
            else:
                raise ValueError(f"unknown setting {key!r}; valid: {sorted(names | set(endpoints) | set(health))}")
        # Read-only views: a running runtime's settings cannot be changed under it.
        settings = cls(
            endpoints=MappingProxyType(endpoints),
            device=inference["device"],
            # "" (the default) is None; a non-string is refused here, before ``or`` could hide it
            profile=check_kind("inference", "profile", inference["profile"]) or None,
            cpu_precision=inference["cpu_precision"],
            # Numbers as the TOML has them: __post_init__ checks each (a 2.5 where an integer is
            # needed is an error, not a 2) and gives it its type.
            infer_requests=inference["infer_requests"],
            collect_group=inference["collect_group"],
            cache_dir=inference["cache_dir"],
            max_message_bytes=limits["max_message_bytes"],
            max_tile_pixels=limits["max_tile_pixels"],
            max_tile_bands=limits["max_tile_bands"],
            max_header_bytes=limits["max_header_bytes"],
            results_hwm=limits["results_hwm"],
            max_tiles_inside=limits["max_tiles_inside"],
            vectorize=MappingProxyType(dict(config["vectorize"])),
            store=config["models"]["store"],
            telemetry_period_s=config["telemetry"]["period_s"],
            curve_server_secret=security["curve_server_secret"],
            curve_authorized=security["curve_authorized"],
            curve_channels=security["curve_channels"],   # __post_init__: a list of strings, as a tuple
            uplink_public_key=security["uplink_public_key"],
            health=MappingProxyType(health),
            recovery=MappingProxyType(dict(config["device_recovery"])),
            remember_tiles=delivery["remember_tiles"],
            shutdown_grace_s=delivery["shutdown_grace_s"],
            ground_ack=delivery["ground_ack"],           # __post_init__: a TOML boolean, not bool("no")
            ground_ack_timeout_s=delivery["ground_ack_timeout_s"],
            strict_fit=config["models"]["strict_fit"],
        )
        return replace(settings, **changes)
