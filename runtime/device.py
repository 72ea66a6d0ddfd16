"""The device seam: one small adapter interface, one class per backend (after OpenVINO's model_api).

An adapter compiles a flight model's IR for one device and runs it, synchronously or through a
pool of asynchronous infer requests so that the host can decode and vectorise other tiles while the
device computes. The runtime sees only :class:`InferenceAdapter`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import numpy as np

from runtime.bundle import Bundle

#: Called from a device thread when an asynchronous request finishes: (output, userdata).
Completion = Callable[[np.ndarray, Any], None]


class InferenceAdapter(abc.ABC):
    """A compiled flight model on one device."""

    device: str
    #: How the device was configured, written into every report beside the figures it produced.
    numerics: dict[str, str]

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W) of the model input."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run one input synchronously and return a copy of the first output."""

    @abc.abstractmethod
    def start_async(self, batch: np.ndarray, userdata: Any) -> None:
        """Queue one input; blocks while every infer request is busy (backpressure)."""

    @abc.abstractmethod
    def wait_all(self) -> None:
        """Block until every queued request has completed and its callback has run."""


class OpenVINOAdapter(InferenceAdapter):
    """Any OpenVINO device by name (``CPU``, ``GPU``, ``NPU``), through the ``openvino`` API.

    On CPU the inference precision is pinned (f32 by default) because the plugin otherwise picks
    bf16 on CPUs that support it, and a figure measured in bf16 says nothing about the flight model.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: str,
        on_complete: Completion,
        infer_requests: int = 0,
        cpu_precision: str = "f32",
    ):
        import openvino as ov

        self.device = device
        core = ov.Core()
        available = core.available_devices
        if device not in available and device.split(".")[0] not in {d.split(".")[0] for d in available}:
            raise ValueError(f"device {device!r} is not attached; available: {available}")
        model = core.read_model(
            model=bundle.files["model.xml"].decode("utf-8"),
            weights=ov.Tensor(np.frombuffer(bundle.files["model.bin"], dtype=np.uint8)),
        )
        config: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT"}
        if device.startswith("CPU"):
            config["INFERENCE_PRECISION_HINT"] = cpu_precision
        self._compiled = core.compile_model(model, device, config)
        self.numerics = {
            "device": device,
            "inference_precision": self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
            if device.startswith("CPU")
            else "device default",
            "weights": "as stored in the IR",
        }
        jobs = infer_requests or int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._queue = ov.AsyncInferQueue(self._compiled, jobs)
        self.jobs = jobs

        def callback(request: Any, userdata: Any) -> None:
            # The request is reused as soon as this returns, so the output is copied out.
            on_complete(request.get_output_tensor(0).data.copy(), userdata)

        self._queue.set_callback(callback)
        self._shape = tuple(int(d) for d in self._compiled.input(0).shape)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return self._shape  # type: ignore[return-value]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        request = self._compiled.create_infer_request()
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()

    def start_async(self, batch: np.ndarray, userdata: Any) -> None:
        self._queue.start_async({0: batch}, userdata)

    def wait_all(self) -> None:
        self._queue.wait_all()


def open_device(bundle: Bundle, device: str, on_complete: Completion, **options: Any) -> InferenceAdapter:
    """Compile ``bundle`` for ``device``. Raises ValueError for a device that is not there."""
    return OpenVINOAdapter(bundle, device, on_complete, **options)
