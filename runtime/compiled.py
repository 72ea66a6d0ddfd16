"""Models compiled on the ground: a bundle carries the blob for its target, the payload imports it.

Why: compiling on the payload costs every start and every uplink (seconds on a Myriad X, with the
plugin's own compiler in flight memory), and what was compiled on board was never the artefact that
was tested. ``python -m runtime compile`` compiles the bundle's IR with OpenVINO for one target and
adds the result to the bundle (``compiled/<TARGET>.blob`` + ``<TARGET>.json``); the runtime imports
a matching blob instead of compiling, and compiles (and says why) when none matches.

A blob matches when its record names the device family the runtime serves on (``CPU``, ``MYRIAD``,
``NPU``...), the exact OpenVINO build of the payload, this bundle's IR (the sha256 of ``model.xml`` and
``model.bin``, checked when the bundle is read, not here: a golden tile added after compiling leaves
the blob valid, since nothing of it went into the blob) and the compile configuration the runtime
would use. OpenVINO's
own ``export_model``/``import_model`` make and read the blob, on both Python APIs.

A signed bundle's blob is imported only when the signature covers its record (which holds the
blob's sha256; :mod:`runtime.signing`): the manifest's signature says nothing about a blob added
beside it, and a payload that takes only signed models would otherwise run code nobody signed.
Such a blob is left aside and the signed IR compiled, with the reason.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from runtime import ov_api
from runtime.bundle import COMPILED_FORMAT, Bundle, ir_checksums, sha256
from runtime.check import refused_ops
from runtime.device_names import MYRIAD_LIKE, TWINS, attached_devices, device_family, names_attached
from runtime.host import describe_host
from runtime.settings import check_cpu_precision

RECORD_FORMAT = COMPILED_FORMAT  # the record format, defined with the bundle format it is read with
#: The device families a blob can be compiled for (``runtime compile --target``).
TARGET_FAMILIES = ("CPU", "MYRIAD", "NPU", "GPU")


def compile_config(target: str, cpu_precision: str = "f32") -> dict[str, Any]:
    """The properties the runtime compiles (or imports) ``target`` with: one place for both."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
    if target.startswith("CPU"):
        config["INFERENCE_PRECISION_HINT"] = check_cpu_precision(cpu_precision)
    return config


def export_blob(compiled: Any) -> bytes:
    """The compiled model's blob (``export_model`` returns bytes in 2022.3, a BytesIO later)."""
    blob = compiled.export_model()
    return blob.getvalue() if hasattr(blob, "getvalue") else bytes(blob)


def compile_bundle(bundle: Bundle, target: str, device: str | None = None, cpu_precision: str = "f32",
                   core: Any | None = None) -> Bundle:
    """A copy of ``bundle`` with a blob for ``target`` (family name: CPU, MYRIAD, NPU, GPU).

    ``device`` picks the instance to compile on (``MYRIAD.1.2-ma2480``); default the family name.
    Raises ValueError for a twin (it compiles a rewritten model on the CPU; nothing to ship), an IR
    with ops the MYRIAD rules of ``runtime check`` refuse (for a MYRIAD target, before anything is
    compiled or a stick looked for), a device not attached here, or an IR its plugin will not compile
    or export (with the plugin's reason, not its trace of source files: ``runtime compile`` says it
    in one line).
    """
    if target in TWINS or target != device_family(target) or target not in TARGET_FAMILIES:
        raise ValueError(f"--target is a device family (valid: {list(TARGET_FAMILIES)}), not {target!r}")
    core = core or ov_api.shared_core()
    device = device or target
    model = ov_api.read_ir(bundle.files["model.xml"], bundle.files["model.bin"], core)
    if target in MYRIAD_LIKE:
        # The runtime refuses such an IR when it opens it on a MYRIAD (runtime.device); its blob would
        # be shipped and never run. Checked first, so that no stick (or 2022.3 toolkit) is needed to hear it.
        errors = refused_ops(model, target)
        if errors:
            raise ValueError(f"{target} cannot run this bundle's IR (python -m runtime check --target {target}), "
                             f"nothing compiled: {errors}")
    attached = attached_devices(core)
    if not names_attached(device, attached) or device_family(device) != target:
        raise ValueError(f"device {device!r} is not a {target} attached here; valid: {attached}")
    config = compile_config(target, cpu_precision)
    started = time.perf_counter()
    try:
        blob = export_blob(core.compile_model(model, device, config))
    except RuntimeError as exc:  # the plugin refuses the IR (an op it lacks, a dynamic rank) or cannot export it
        raise ValueError(f"{device} cannot compile this bundle's IR into a blob: "
                         f"{ov_api.plugin_message(exc)}") from None
    record = {
        "format": RECORD_FORMAT,
        "target": target,
        "compiled_on": device,
        "openvino": ov_api.version(),
        "config": {k: str(v) for k, v in config.items()},
        "ir_sha256": ir_checksums(bundle.manifest),  # the IR alone: what the blob is made from
        "blob_sha256": sha256(blob),
        "compile_seconds": round(time.perf_counter() - started, 3),
        "host": describe_host(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    record_bytes = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return Bundle(manifest=bundle.manifest, files=bundle.files, manifest_bytes=bundle.manifest_bytes,
                  compiled={**bundle.compiled, target: (record_bytes, blob)})


def matching_blob(bundle: Bundle, target: str, config: dict[str, Any]) -> tuple[bytes | None, str]:
    """The blob the runtime may import for ``target`` (a family name) and why, or None and why not."""
    if not bundle.compiled:
        return None, "the bundle has no compiled blob"
    if target not in bundle.compiled:
        return None, f"the bundle's blobs are for {sorted(bundle.compiled)}, not {target}"
    record_bytes, blob = bundle.compiled[target]
    record = json.loads(record_bytes)
    if bundle.signature is not None and not signature_covers(bundle, target):
        return None, (f"compiled/{target}.blob is not covered by the bundle's signature (signed before the blob "
                      "was added, or the blob was replaced): compiled the signed IR instead; sign the bundle "
                      "again (python -m runtime sign) to ship the blob")
    if record.get("openvino") != ov_api.version():
        return None, (f"blob for {target} was made by OpenVINO {record.get('openvino')}, "
                      f"this payload runs {ov_api.version()}")
    wanted = {k: str(v) for k, v in config.items()}
    if record.get("config") != wanted:
        return None, f"blob for {target} was compiled with {record.get('config')}, the runtime needs {wanted}"
    return blob, (f"imported compiled/{target}.blob (OpenVINO {record['openvino']}, "
                  f"compiled on {record.get('compiled_on')})")


def signature_covers(bundle: Bundle, target: str) -> bool:
    """Whether ``bundle.signature`` lists ``target``'s record (and so its blob) among what it signs.

    Reads the record only; whether the signature itself is good is :func:`runtime.signing.verify`'s
    question (asked before a payload with a ground key opens the bundle), and the blob's sha256
    against its record is checked when the bundle is read; both are checked again here for a bundle
    built in memory. Kept free of the signature library, which only payloads that check need.
    """
    try:
        covered = json.loads(bundle.signature or b"").get("compiled") or {}
        record_bytes, blob = bundle.compiled[target]
        return (isinstance(covered, dict) and covered.get(target) == sha256(record_bytes)
                and json.loads(record_bytes).get("blob_sha256") == sha256(blob))
    except (ValueError, AttributeError, KeyError):
        return False


def import_blob(core: Any, blob: bytes, device: str, config: dict[str, Any]) -> Any:
    """``core.import_model`` on both APIs (a stream in 2023+, bytes or a stream in 2022.3)."""
    return core.import_model(io.BytesIO(blob), device, config)
