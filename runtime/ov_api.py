"""One import for both OpenVINO Python APIs the payload meets.

The Myriad X plugin exists only in the OpenVINO 2022.3 LTS toolkit (Python 3.10 at most), whose API
lives in ``openvino.runtime``; modern releases expose the same classes from ``openvino`` and dropped
``openvino.runtime`` in 2026. Everything in the runtime imports OpenVINO from here.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import importlib
from types import ModuleType

import numpy as np

try:  # OpenVINO 2023.1 and later
    from openvino import CompiledModel, Core, Model, Output, Tensor, Type
    from openvino import get_version as _get_version
    from openvino import opset1
    from openvino import save_model as _save_model

    API = "openvino"
except ImportError:  # OpenVINO 2022.3 LTS, the last with the MYRIAD plugin
    from openvino.runtime import CompiledModel, Core, Model, Output, Tensor, Type  # type: ignore[no-redef]
    from openvino.runtime import get_version as _get_version  # type: ignore[no-redef]
    from openvino.runtime import opset1  # type: ignore[no-redef]
    from openvino.runtime import serialize as _serialize  # type: ignore[attr-defined]

    API = "openvino.runtime"

try:  # OpenVINO's Python-side exception for an input it cannot take (input_refusal)
    from openvino.exceptions import UserInputError
except ImportError:
    try:  # the 2022.3 API keeps it under openvino.runtime
        from openvino.runtime.exceptions import UserInputError  # type: ignore[no-redef]
    except ImportError:  # a build without it raises none: nothing to tell apart, and no reason to fail the import

        class UserInputError(Exception):  # type: ignore[no-redef]
            """Stands in for OpenVINO's own where the build has none: never raised."""

__all__ = ["API", "CompiledModel", "Core", "Model", "Output", "Tensor", "Type", "compile_cached", "convert_model",
           "input_refusal", "loaded_from_cache", "opset", "opset1", "plugin_message", "read_ir", "save_ir",
           "save_model", "shared_core", "version"]


_SHARED_CORE: Any = None
_SHARED_CORE_LOCK = threading.Lock()


def shared_core() -> Any:
    """The process's one ``Core``, for everything that opens or lists devices.

    Each ``Core()`` loads its own plugin objects, and a MYRIAD plugin sees only the sticks nobody has
    booted plus the ones it booted itself (2022.3 intel_myriad myriad_metrics.cpp
    AvailableDevicesNames; mvnc ncAvailableDevices lists X_LINK_UNBOOTED devices): a second Core
    does not see the stick a serving model holds, so an uplinked model or a reopen would resolve
    ``flight`` to the twin, or refuse ``MYRIAD``. One Core puts the second network on the same
    stick (myriad_executor.cpp openDevice). ``ov.Core`` is thread-safe.
    """
    global _SHARED_CORE
    with _SHARED_CORE_LOCK:
        if _SHARED_CORE is None:
            _SHARED_CORE = Core()
        return _SHARED_CORE


#: Held while the 2022.3 API's Core-wide CACHE_DIR is set for one compile (see :func:`compile_cached`).
_CACHE_DIR_LOCK = threading.Lock()


def compile_cached(core: Any, model: Any, device: str, config: dict[str, Any], cache_dir: str) -> Any:
    """``core.compile_model(model, device, config)`` with OpenVINO's model cache in ``cache_dir``.

    OpenVINO hashes the model, the device and the configuration; a compile whose hash has an entry
    in the folder imports it instead of compiling, and one without writes the entry. The modern API
    takes ``CACHE_DIR`` in the compile's own configuration. The 2022.3 API is given it Core-wide
    (``Core.set_property({"CACHE_DIR": ...})``, which creates the folder; "" turns it off again) and
    the process has one Core (:func:`shared_core`), so it is set for this compile only, under a lock,
    and cleared after: another compile (the ground's ``runtime compile``) must not write entries.
    """
    if API == "openvino":
        return core.compile_model(model, device, {**config, "CACHE_DIR": cache_dir})
    with _CACHE_DIR_LOCK:
        core.set_property({"CACHE_DIR": cache_dir})
        try:
            return core.compile_model(model, device, config)
        finally:
            core.set_property({"CACHE_DIR": ""})


def loaded_from_cache(compiled: Any) -> bool | None:
    """Whether OpenVINO took ``compiled`` from its model cache (``LOADED_FROM_CACHE``), or None where
    the plugin or the API does not say (the caller then judges by the files the compile wrote)."""
    try:
        return bool(compiled.get_property("LOADED_FROM_CACHE"))
    except Exception:  # 2022.3 and plugins that do not report it: "unsupported property"
        return None


def convert_model(model: Any, **options: Any) -> Any:
    """``openvino.convert_model`` (a torch module to an OpenVINO model): design-time only, so only
    the modern API has it; the 2022.3 environment never exports."""
    import openvino

    return openvino.convert_model(model, **options)


def save_model(model: Any, xml_path: str | os.PathLike[str], compress_to_fp16: bool) -> None:
    """``openvino.save_model``: an IR with its weights compressed to FP16 or kept as they are."""
    if API == "openvino":
        _save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)
    elif compress_to_fp16:
        raise ValueError("FP16 compression on save needs OpenVINO 2023.1 or later")
    else:
        save_ir(model, xml_path)


def read_ir(xml: bytes, bin_: bytes, core: Any = None) -> Any:
    """An IR held in memory (a bundle's ``model.xml`` and ``model.bin`` bytes) as an ``ov.Model``,
    without writing it to disk; ``core`` reuses a ``Core`` the caller already has.

    Raises:
        ValueError: when OpenVINO cannot read it (XML that is no IR, weights that do not fit it),
            with OpenVINO's reason in one line rather than its multi-line trace of source files.
    """
    try:
        text = xml.decode("utf-8")
        return (core or Core()).read_model(model=text, weights=Tensor(np.frombuffer(bin_, dtype=np.uint8)))
    except (RuntimeError, UnicodeDecodeError) as exc:
        raise ValueError(f"OpenVINO cannot read this IR (model.xml, model.bin): {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The last line of an OpenVINO error that is not one of its "Exception from FILE:LINE:" lines."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("Exception from ")]
    return lines[-1] if lines else repr(exc)


def plugin_message(exc: BaseException) -> str:
    """A plugin exception in one line for a load detail or a command's error: OpenVINO's open with a
    trace of the source files it passed through ("Exception from src/...", "Check '...' failed at
    ..."), left out here, and say why on the lines after, all kept (a refused CPU blob names the
    instruction set it was built for on one line and this host's on the next)."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    said = [line for line in lines if not re.match(r"(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:)$", line)]
    return "; ".join(said or lines or [type(exc).__name__])[:600]


#: How OpenVINO says that a request's input does not fit the compiled model, in either API (each seen
#: raised by its CPU plugin for a tensor of another shape or element type): 2022.3's "Can't set input blob
#: with name: ..., because model input (shape=...) and blob (shape=...) are incompatible" and "[
#: PARAMETER_MISMATCH ] Failed to set input blob with precision: FP64, ..." (its other input checks: "Input
#: blob size is not equal network input size"); 2026's "Can't set the input tensor with index: 0, because
#: the model input ... and the tensor ... are incompatible", "ParameterMismatch: Failed to set tensor for
#: input with precision: f64, ..." and "The input tensor size is not equal to the model input type". A
#: lost or failing device says none of these (NC_ERROR, XLink errors).
_INPUT_REFUSED = re.compile(r"parameter_?mismatch|input (blob|tensor) size is not equal"
                            r"|can't set (the )?input (tensor|blob)|failed to set (input blob|tensor for input)",
                            re.IGNORECASE)


def input_refusal(exc: BaseException) -> str | None:
    """OpenVINO's complaint that a request's input does not fit the compiled model (its element type
    or shape), in one line (:func:`plugin_message`); None for any other error, such as a device
    that failed or is gone.

    Why: the runtime's device recovery counts a failed request against the device (a streak of them
    reopens it), but a request refused for its input says nothing about the device, and would be
    refused again on any device (tests/runtime/test_input_refused_review26.py). OpenVINO raises these
    as RuntimeError with the plugin's text, so the text is what tells them apart.
    """
    if isinstance(exc, UserInputError):
        return plugin_message(exc)
    if isinstance(exc, RuntimeError) and _INPUT_REFUSED.search(str(exc)):
        return plugin_message(exc)
    return None


def opset(n: int) -> ModuleType:
    """The graph-building module of opset ``n`` (``openvino.opsetN``) under either API."""
    return importlib.import_module(f"{API}.opset{n}")


def version() -> str:
    """The OpenVINO build string, e.g. ``2026.4.1-...`` or ``2022.3.2-...``."""
    return _get_version()


def save_ir(model: Any, xml_path: str | os.PathLike[str]) -> None:
    """Write ``model`` as IR (``.xml`` and ``.bin`` beside it) with every constant as it is.

    No FP16 compression pass: weights read from an FP16 IR stay f16, and constants added in f32
    (e.g. a normalisation) stay f32.
    """
    if API == "openvino":
        _save_model(model, str(xml_path), compress_to_fp16=False)
    else:
        _serialize(model, str(xml_path), os.path.splitext(str(xml_path))[0] + ".bin")
