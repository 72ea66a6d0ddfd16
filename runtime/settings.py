"""What a runtime is started with: runtime/defaults.toml (merged with ``--config``) as one typed,
frozen object, with the command line's overrides applied once.

Every default lives in defaults.toml; this module only gives them types and names, so there is no
second set of defaults to drift from the first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import Any, Mapping

#: What the CPU plugin may be told to compute in (``INFERENCE_PRECISION_HINT``); the runtime's is
#: ``[inference] cpu_precision``, f32, since the plugin's own default is bf16 where the CPU has it.
#: bf16 and f16 take effect only on CPUs with those units (AVX512_BF16/AMX, AVX512_FP16);
#: elsewhere the plugin computes in f32 whatever it is told.
CPU_PRECISIONS = ("f32", "bf16", "f16")


def check_cpu_precision(cpu_precision: str) -> str:
    """``cpu_precision`` if it is one of :data:`CPU_PRECISIONS`, else a ``ValueError`` listing them."""
    if cpu_precision not in CPU_PRECISIONS:
        raise ValueError(f"cpu precision must be one of {list(CPU_PRECISIONS)}; got {cpu_precision!r}")
    return cpu_precision


@dataclass(frozen=True)
class Settings:
    """The runtime's configuration (see runtime/defaults.toml for what each means)."""

    endpoints: Mapping[str, str]
    device: str
    profile: str | None                 # the twin's profile; None: the manifest's, else the twin's default
    cpu_precision: str
    infer_requests: int
    max_message_bytes: int
    max_tile_pixels: int
    max_tile_bands: int
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

    @classmethod
    def from_config(cls, config: dict[str, Any], **overrides: Any) -> Settings:
        """``config`` is runtime/defaults.toml merged with a user TOML (:func:`runtime.config.defaults`);
        ``overrides`` (None: not given) are settings or endpoint names, e.g. ``device="CPU"``,
        ``tiles="ipc:///tmp/t"``, ``watchdog_file="..."`` (into ``health``).

        Raises:
            ValueError: for an override that names no setting, listing the valid ones.
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
            profile=inference["profile"] or None,
            cpu_precision=check_cpu_precision(inference["cpu_precision"]),
            infer_requests=int(inference["infer_requests"]),
            max_message_bytes=int(limits["max_message_bytes"]),
            max_tile_pixels=int(limits["max_tile_pixels"]),
            max_tile_bands=int(limits["max_tile_bands"]),
            results_hwm=int(limits["results_hwm"]),
            max_tiles_inside=int(limits["max_tiles_inside"]),
            vectorize=MappingProxyType(dict(config["vectorize"])),
            store=config["models"]["store"],
            telemetry_period_s=float(config["telemetry"]["period_s"]),
            curve_server_secret=security["curve_server_secret"],
            curve_authorized=security["curve_authorized"],
            curve_channels=tuple(security["curve_channels"]),
            uplink_public_key=security["uplink_public_key"],
            health=MappingProxyType(health),
            recovery=MappingProxyType(dict(config["device_recovery"])),
            remember_tiles=int(delivery["remember_tiles"]),
            shutdown_grace_s=float(delivery["shutdown_grace_s"]),
            ground_ack=bool(delivery["ground_ack"]),
            ground_ack_timeout_s=float(delivery["ground_ack_timeout_s"]),
            strict_fit=bool(config["models"]["strict_fit"]),
        )
        return replace(settings, **changes)
