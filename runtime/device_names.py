"""Device names: which are twins, which the flight default prefers, and a name's family.

Kept apart from :mod:`runtime.device` so that modules the adapters use (``runtime.compiled``) can
name devices without importing the adapters back.
"""

from __future__ import annotations

from typing import Any

from runtime import ov_api

#: Twins: device name -> the profile they apply by default.
TWINS = {"myriadx-emu": "fp16-myriadx"}
#: What the flight default picks, best first: the real VPU, then its successor, then the twin.
FLIGHT_PREFERENCE = ("MYRIAD", "NPU", "myriadx-emu")
#: Devices whose latency the Myriad X cost model estimates.
MYRIAD_LIKE = ("MYRIAD", "myriadx-emu")


def check_profile_device(device: str, profile: str | None) -> None:
    """Refuse a twin profile asked for on a device that is no twin: that device computes in its own
    numerics, so the profile would be ignored and its scores reported as the device's own.

    ``flight`` is taken: it is the twin wherever no MYRIAD or NPU is attached.

    Raises:
        ValueError: naming the profile, the device, and where a profile applies.
    """
    if profile and device != "flight" and device_family(device) not in TWINS:
        raise ValueError(f"profile {profile!r} is the twin's target profile: it applies to "
                         f"{' or '.join(TWINS)} (or flight where that is the twin), not {device}, which "
                         "computes in its own numerics; give --device myriadx-emu, or no profile")


#: OpenVINO's device plugins (2022.3 and 2024+) by the family part of their device names.
PLUGIN_FAMILIES = ("CPU", "GPU", "NPU", "MYRIAD", "HDDL", "GNA", "VPUX")


def check_device_name(setting: str, device: str) -> None:
    """Refuse a device name of no known plugin family (a typo such as ``CPUU``): a runtime started
    without a model looks for its device only at the first uplink, and said "ready" on it until then.
    A family known but not attached here passes: a stick may be plugged in later, and a load falls
    back (``[device_recovery] fallback_device``)."""
    if device != "flight" and device_family(device) not in (*PLUGIN_FAMILIES, *TWINS):
        raise ValueError(f"{setting} {device!r}: no such device family; valid: 'flight', "
                         f"{list(TWINS)}, or a device of {list(PLUGIN_FAMILIES)} (e.g. MYRIAD.1.2-ma2480)")


def device_family(device: str) -> str:
    """``MYRIAD.1.2-ma2480`` (a numbered stick), ``NPU.0``: the plugin name without the instance."""
    return device if device in TWINS else device.split(".")[0]


def attached_devices(core: Any | None = None) -> list[str]:
    """OpenVINO devices present on this host (``CPU``, ``GPU.0``, ``MYRIAD``...).

    OpenVINO lists a family with a single instance bare (``MYRIAD``, not ``MYRIAD.1.2-ma2480``:
    Core::get_available_devices adds the id only when a plugin reports more than one); that
    instance's full name, which OpenVINO accepts too, is listed after it."""
    core = core or ov_api.shared_core()
    listed = list(core.available_devices)
    out = list(listed)
    for name in listed:
        if "." in name:
            continue
        try:
            ids = [str(i) for i in core.get_property(name, "AVAILABLE_DEVICES")]
        except Exception:  # a plugin that does not say; the bare name is enough
            continue
        if len(ids) == 1 and ids[0] and f"{name}.{ids[0]}" not in out:
            out.append(f"{name}.{ids[0]}")
    return out


def names_attached(device: str, attached: list[str]) -> bool:
    """Whether ``device`` is one of ``attached`` as OpenVINO lists it (``MYRIAD.1.2-ma2480``,
    ``GPU.0``), or a bare family one of them belongs to (``GPU`` with ``GPU.0`` and ``GPU.1``
    attached: OpenVINO picks the instance). Any other instance suffix (``CPU.7``) is not."""
    return device in attached or ("." not in device and device in {device_family(d) for d in attached})
