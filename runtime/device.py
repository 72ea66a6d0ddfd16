"""The device seam: one small adapter interface, one class per backend (after OpenVINO's model_api).

An adapter compiles a flight model's IR for one device and runs it, synchronously or through a
pool of asynchronous infer requests so that the host can decode and vectorise other tiles while the
device computes. The runtime sees only :class:`InferenceAdapter`.

Devices by name:

- any OpenVINO device: ``CPU``, ``GPU``, ``NPU`` (modern OpenVINO), ``MYRIAD`` (OpenVINO 2022.3 with
  the plugin copied in); through either Python API (:mod:`runtime.ov_api`);
- ``myriadx-emu``: the Myriad X twin. The IR is rewritten to the ``fp16-myriadx`` profile
  (:mod:`runtime.emulate`) and compiled for the CPU in f32; its latency on a real Myriad X is
  *estimated* (:mod:`runtime.latency`) and reported beside, never mixed with, the host's;
- ``flight``: the flight default, the first of :data:`FLIGHT_PREFERENCE` that is there.

Length: one seam. The interface, the OpenVINO adapter with its pool of requests and the thread that
collects them in groups (their submission, collection and close share one count of what is in
flight and one lock), and how a device name resolves to the adapter and its numerics.
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from runtime import ov_api
from runtime.bundle import Bundle, ir_checksums
from runtime.cache_index import compile_key
from runtime.compiled import compile_config, import_blob, matching_blob
from runtime.config import check_count
from runtime.device_names import (FLIGHT_PREFERENCE, MYRIAD_LIKE, TWINS, attached_devices, device_family,
                                   names_attached)
from runtime.host import describe_host
from runtime.model_cache import CacheCompile, compile_with_cache

__all__ = ["FLIGHT_PREFERENCE", "MYRIAD_LIKE", "TWINS", "attached_devices", "device_family", "open_device",
           "resolve", "flight_default", "available_devices", "InferenceAdapter", "OpenVINOAdapter", "TargetError"]

log = logging.getLogger(__name__)


class TargetError(ValueError):
    """The IR uses something the target device cannot run (runtime.check)."""


#: Called from a device thread when an asynchronous request finishes: (output, userdata).
Completion = Callable[[np.ndarray, Any], None]

def available_devices(core: Any | None = None) -> list[dict[str, str]]:
    """Every device a runtime here can serve on: the attached ones and the twins, described."""
    core = core or ov_api.shared_core()
    out = []
    for name in attached_devices(core):
        try:
            full = str(core.get_property(name, "FULL_DEVICE_NAME"))
        except Exception:  # some plugins do not report it; the name is enough
            full = name
        out.append({"name": name, "kind": "openvino", "description": full})
    for name, profile in TWINS.items():
        out.append({"name": name, "kind": "twin",
                    "description": f"Myriad X twin on the CPU: IR rewritten to profile {profile}, f32 host arithmetic"})
    return out


def flight_default(core: Any | None = None) -> tuple[str, str]:
    """The device a flight runtime should use here, and why: MYRIAD, else NPU, else the twin."""
    attached = {d.split(".")[0] for d in attached_devices(core)}
    for name in FLIGHT_PREFERENCE:
        if name in attached:
            return name, f"{name} is attached"
        if name in TWINS:
            return name, "no MYRIAD or NPU attached: using the Myriad X twin"
    raise AssertionError("FLIGHT_PREFERENCE ends with a twin")


def resolve(device: str, core: Any | None = None) -> str:
    """``flight`` becomes the flight default; any other name is checked against what is here.

    A name is an attached device exactly as OpenVINO lists it (``MYRIAD.1.2-ma2480``, ``GPU.0``) or
    a bare family one of them belongs to (``MYRIAD``, ``GPU``): OpenVINO picks the instance. Any
    other instance suffix (``CPU.7``, ``MYRIAD.``) is refused here, with the valid names, rather
    than failing later inside the plugin.
    """
    if device == "flight":
        return flight_default(core)[0]
    if device in TWINS:
        return device
    attached = attached_devices(core)
    if not names_attached(device, attached):
        valid = [*attached, *TWINS, "flight"]
        raise ValueError(f"device {device!r} is not available here; valid: {valid}")
    return device


class InferenceAdapter(abc.ABC):
    """A compiled flight model on one device."""

    device: str
    #: How the device computes, written into every report beside the figures it produced.
    numerics: dict[str, Any]
    #: The Myriad X cost model's estimate for MYRIAD and its twin (runtime.latency); else None.
    latency_estimate: dict[str, Any] | None = None
    #: How the model got onto the device ("compiled" here or "imported" from a blob), from where
    #: (``from``: "blob", "cache": OpenVINO's model cache, or "compile": compiled afresh) and why.
    load: dict[str, str]

    @property
    def estimated_latency_ms(self) -> float | None:
        """Estimated latency of one inference on a Myriad X; never a measurement."""
        return None if self.latency_estimate is None else float(self.latency_estimate["estimated_latency_ms"])

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W) of the model input."""

    @property
    @abc.abstractmethod
    def input_dtype(self) -> str:
        """The model input's element type as a numpy name (``float32``, ``uint8``, ``uint16``)."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one input synchronously and return a copy of the first output."""

    @abc.abstractmethod
    def start_async(self, batch: np.ndarray, userdata: Any) -> None:
        """Queue one input; blocks while every infer request is busy (backpressure)."""

    @abc.abstractmethod
    def wait_all(self, timeout_s: float | None = None) -> bool:
        """Block until every queued request has completed and its callback has run, or at most
        ``timeout_s``; whether they all did (False: a request hung on the device)."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Requests submitted whose callback has not run yet."""

    def close(self) -> None:
        """Finish what was submitted and release the device's threads (a model being replaced)."""
        self.wait_all()

    def refused_input(self, batch: np.ndarray | None, error: BaseException) -> str | None:
        """Why ``error``, raised for a request of ``batch``, is the request's own input's fault and not
        the device's; None when it is not (it may say the device failed).

        Either ``batch`` does not fit the model's input (its shape, or its element type where that is a
        numpy one), so that it cannot run on any device, whatever this one said; or OpenVINO said that
        the input it was given does not fit (:func:`runtime.ov_api.input_refusal`), which covers an
        input the adapter itself handed on otherwise than ``batch``. Why: device recovery counts a
        failed request against the device, and a streak of them reopens it; a refused input says nothing
        about the device and would be refused again (tests/runtime/test_input_refused_review26.py).
        """
        said = ov_api.input_refusal(error)
        if batch is not None:
            shape, dtype = tuple(int(d) for d in batch.shape), np.dtype(batch.dtype).name
            # The dtype is compared only where the model's has a numpy name: an unmapped OpenVINO type
            # name never equals one, and every failure of such a device would be taken for the tile's.
            if shape != tuple(self.input_shape) or (self.input_dtype in _NUMPY_TYPES.values()
                                                    and dtype != self.input_dtype):
                fits = f"the model takes {list(self.input_shape)} {self.input_dtype}"
                return f"an input of {list(shape)} {dtype}, where {fits}: {said or ov_api.plugin_message(error)}"
        return said


def _type_name(value: Any) -> str:
    # ov.Type has to_string() from 2023 on; get_type_name() exists in both APIs.
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def twin_profile(device: str, bundle: Bundle, requested: str | None = None) -> tuple[str, str]:
    """The profile a twin computes under, and why: the one asked for (``--profile``), else the
    one the model was aligned to (manifest ``numerics.profile``), else the twin's own default.
    So a model trained for profile P is scored under P unless someone asks otherwise."""
    if requested:
        return requested, "requested"
    aligned = (bundle.manifest.get("numerics") or {}).get("profile")
    if aligned:
        return str(aligned), "manifest numerics.profile"
    return TWINS[device], f"the default of {device}"


def _device_numerics(target: str) -> str | None:
    """What a report may say about a real device's numerics: never more than is known."""
    family = device_family(target)
    if family == "MYRIAD":
        return ("the device's own FP16 (not measured by this project; the twin's fp16-myriadx profile "
                "models it, partly by hypothesis: docs/devices.md)")
    if family == "CPU":
        return None  # the host's arithmetic, named by inference_precision
    return f"the device's own ({family}; not modelled by any profile here)"


#: OpenVINO element type names -> numpy dtype names, for the input types a bundle may declare.
_NUMPY_TYPES = {"f32": "float32", "u8": "uint8", "u16": "uint16", "f16": "float16"}


class OpenVINOAdapter(InferenceAdapter):
    """An OpenVINO device by name, or a twin compiled for the CPU after a graph rewrite.

    On CPU the inference precision is pinned (f32 by default) because the plugin otherwise picks
    bf16 on CPUs that support it, and a figure measured in bf16 says nothing about the flight model.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str,
        on_complete: Completion,
        infer_requests: int = 0,
        collect_group: int = 1,
        cpu_precision: str = "f32",
        profile: str | None = None,
        cache_dir: str = "",
    ):
        """Compile (or import) ``bundle`` for ``device``; ``cache_dir`` is OpenVINO's model cache for
        a compile made here ("": none; :mod:`runtime.model_cache`), a matching blob needs none.

        ``collect_group``: up to so many submitted requests are collected together (:meth:`_collect`);
        ``infer_requests``: how many requests there are, 0 for that group plus two per request the
        device calls optimal (one running and one queued on each stream while a group is collected).
        """
        collect_group = check_count("collect_group", collect_group)
        core = ov_api.shared_core()  # one per process: a second one's MYRIAD plugin cannot see the stick
        self.device = resolve(device, core)
        model = ov_api.read_ir(bundle.files["model.xml"], bundle.files["model.bin"], core)
        if device_family(self.device) in MYRIAD_LIKE:
            from runtime.check import refused_ops
            from runtime.latency import estimate_latency

            # What the VPU cannot run is refused here, before compilation, as the device would.
            errors = refused_ops(model, "MYRIAD")
            if errors:
                raise TargetError("the Myriad X cannot run this IR: " + errors)

            self.latency_estimate = estimate_latency(model).to_json()
            # The per-layer list is too long for every status; its summary of op types priced by
            # bytes alone is not, and must reach hil, the search and `runtime benchmark`.
            self.latency_estimate.pop("layers")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
        self.emulation: dict[str, Any] | None = None
        self.profile_source: str | None = None
        #: How the model got onto the device: compiled here (afresh or from the model cache), or
        #: imported from the bundle's blob.
        self.load: dict[str, str] = {}
        if self.device in TWINS:
            from runtime.emulate import compile_twin

            profile, self.profile_source = twin_profile(self.device, bundle, profile)
            key = compile_key(ir_checksums(bundle.manifest), self.device, config, profile)
            # compile_twin hands back what its compile_cpu made: here the compile with its outcome
            twin, report = compile_twin(model, profile, core, config,
                                        lambda rewritten, full: compile_with_cache(core, rewritten, "CPU", full,
                                                                                   cache_dir, key, bundle.id))
            self._compiled = twin.compiled
            self.emulation = report.as_dict()
            target = "CPU"
            self.load = _compiled_load("twin: the rewritten IR is compiled for the CPU", twin)
        else:
            target = self.device
            config = compile_config(target, cpu_precision)
            blob, why = matching_blob(bundle, device_family(target), config)
            if blob is not None:
                try:
                    self._compiled = import_blob(core, blob, target, config)
                    self.load = {"how": "imported", "from": "blob", "detail": why}
                except Exception as exc:  # a damaged blob (truncated on the ground): the IR still compiles
                    blob, why = None, f"blob could not be imported: {ov_api.plugin_message(exc)}"
            if blob is None:
                key = compile_key(ir_checksums(bundle.manifest), target, config)
                here = compile_with_cache(core, model, target, config, cache_dir, key, bundle.id)
                self._compiled = here.compiled
                self.load = _compiled_load(f"compiled on board: {why}", here)
        if target.startswith("CPU"):
            host = _type_name(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        else:
            host = "device native"
        self.numerics = {
            "device": self.device,
            "executes_on": target,
            "inference_precision": host,
            "profile": profile if self.device in TWINS else _device_numerics(target),
            "profile_source": self.profile_source,
            "openvino": ov_api.version(),
            "host": describe_host(),  # whose CPU computed (the twin and CPU figures depend on it)
        }
        # By default each stream has a tile queued behind the one it runs, and never idles while
        # Python hands it the next, even while a whole group of finished requests is being collected.
        optimal = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.jobs = infer_requests or collect_group + 2 * optimal
        self.collect_group = collect_group
        self._on_complete = on_complete
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(self.jobs):
            self._idle.put(self._compiled.create_infer_request())
        # Requests are collected in submission order by a thread of ours, not by a callback:
        # OpenVINO runs callbacks on the stream that computed the request, and that stream starts
        # nothing else until the callback has taken the GIL. wait() releases the GIL, so the device
        # never waits for Python.
        self._pending: queue.SimpleQueue[tuple[Any, np.ndarray, Any] | None] = queue.SimpleQueue()
        self._in_flight = 0
        #: Set by close() under _drained: no submission is accepted after it (nobody would collect it).
        self._closed = False
        self._drained = threading.Condition()
        self._collector = threading.Thread(target=self._collect, name=f"infer-{self.device}", daemon=True)
        self._collector.start()
        self._shape = tuple(int(d) for d in self._compiled.input(0).shape)
        etype = _type_name(self._compiled.input(0).get_element_type())
        self._dtype = _NUMPY_TYPES.get(etype, etype)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self._shape  # type: ignore[return-value]

    @property
    def input_dtype(self) -> str:
        return self._dtype

    def infer(self, batch: np.ndarray) -> np.ndarray:
        request = self._compiled.create_infer_request()
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()

    def start_async(self, batch: np.ndarray, userdata: Any) -> None:
        """Submit ``batch``; blocks while every request is busy (the runtime's backpressure).

        Raises RuntimeError once close() has begun: the collecting thread stops, so a request queued
        then would be accepted and never delivered. The submission is counted in flight under the
        same lock as that check, before it waits for a free request, so a close() that begins while
        it waits finishes it first (wait_all) instead of stopping the collector under it.
        """
        with self._drained:
            if self._closed:
                raise RuntimeError(f"the {self.device} adapter is closed (its model was replaced or its device "
                                   "reopened): submit to the one serving now")
            self._in_flight += 1
        request = None
        try:
            request = self._idle.get()
            # The request reads the array in place; the array travels with it until collected, so
            # it outlives the inference.
            data = np.ascontiguousarray(batch)
            request.set_input_tensor(0, ov_api.Tensor(data, shared_memory=True))
            request.start_async()
        except BaseException:
            if request is not None:
                self._idle.put(request)
            with self._drained:
                self._in_flight -= 1
                self._drained.notify_all()
            raise
        self._pending.put((request, data, userdata))

    def _collect(self) -> None:
        """Collect the submitted requests in submission order, a group at a time.

        The group is what has been submitted by the time the first of it is taken, up to
        ``collect_group``. This thread waits for the group's last request, then collects each in
        order (:meth:`_result`, at once for those already done), hands their requests back together
        and passes the results on in order. Why: collected one by one, this thread woke for every
        tile, and so did the main loop waiting in :meth:`start_async` for a free request; each
        wake-up is a context switch and a turn of the GIL beside the inference streams, in caches
        those streams have just swept (docs/throughput.md, "Requests collected in groups"). A group
        never waits for a tile not yet submitted, so under a light load requests are collected one by
        one as before. A request that fails has it and those before it passed on at once, so that a
        failing device is heard of even if a later request of the group never returns.
        """
        last = False
        while not last:
            group: list[tuple[Any, np.ndarray, Any]] = []
            item = self._pending.get()
            while item is not None:
                group.append(item)
                if len(group) == self.collect_group:
                    break
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
            last = item is None  # close(): what was taken with it is still collected
            failed_last: Exception | None = None
            if len(group) > 1:
                try:  # the last first, so that this thread wakes once for the group
                    group[-1][0].wait()
                except Exception as exc:  # its wait in _result says it again; kept in case a plugin does not
                    failed_last = exc
            done: list[tuple[Any, Any, np.ndarray | Exception]] = []
            for n, (request, _batch, userdata) in enumerate(group):
                output = self._outcome(request)
                if n == len(group) - 1 and failed_last is not None and not isinstance(output, Exception):
                    output = failed_last
                done.append((request, userdata, output))
                if isinstance(output, Exception):
                    self._pass_on(done)
            self._pass_on(done)

    def _pass_on(self, done: list[tuple[Any, Any, np.ndarray | Exception]]) -> None:
        """Hand the requests of ``done`` back (the main loop may refill them), then pass each result
        on in order to the runtime's handler; ``done`` is emptied."""
        for request, _userdata, _output in done:
            self._idle.put(request)
        for _request, userdata, output in done:
            try:
                self._on_complete(output, userdata)
            except Exception:  # a bug in the runtime's handler: this tile's, not every later one's
                # Uncaught, it ended this thread, and every request after it stayed in flight for ever.
                log.exception("the completion handler failed on a request; collecting the next")
            finally:
                with self._drained:
                    self._in_flight -= 1
                    self._drained.notify_all()
        done.clear()

    def _outcome(self, request: Any) -> np.ndarray | Exception:
        """The request's output, or what the device raised for it (the runtime is told either)."""
        try:
            return self._result(request)
        except Exception as exc:  # the device failed this request (NC_ERROR, a lost device...)
            return exc

    def _result(self, request: Any) -> np.ndarray:
        """Wait for ``request`` and copy its output out (the request is reused once idle again).
        Raises what the plugin raises for a failed inference (NC_ERROR, a lost device...)."""
        request.wait()
        return request.get_output_tensor(0).data.copy()

    def wait_all(self, timeout_s: float | None = None) -> bool:
        with self._drained:
            return self._drained.wait_for(lambda: self._in_flight == 0, timeout_s)

    @property
    def in_flight(self) -> int:
        """Requests submitted and not yet collected."""
        with self._drained:
            return self._in_flight

    def close(self) -> None:
        """Refuse new submissions, finish what was submitted, then stop the collecting thread."""
        with self._drained:
            self._closed = True
        self.wait_all()
        self._pending.put(None)
        self._collector.join()


def _compiled_load(why: str, outcome: CacheCompile) -> dict[str, str]:
    """The ``load`` of a model compiled here: from the model cache or afresh, and why."""
    return {"how": "compiled", "from": outcome.source,
            "detail": f"{why}; {outcome.said or 'compiled afresh (no model cache)'}"}


def open_device(bundle: Bundle, device: str, on_complete: Completion, **options: Any) -> InferenceAdapter:
    """Compile ``bundle`` for ``device``. Raises ValueError for a device that is not there."""
    return OpenVINOAdapter(bundle, device, on_complete, **options)
