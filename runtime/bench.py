"""``runtime benchmark``: host latency and throughput of a bundle on a device, measured, beside the
Myriad X latency the cost model estimates. The two are different quantities and never mixed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import read_bundle
from runtime.device import open_device


def benchmark(model: str | Path, device: str, seconds: float, cpu_precision: str) -> dict[str, Any]:
    """Run the bundle on random input for ``seconds`` (async, all requests busy) and report."""
    bundle = read_bundle(model)
    done: list[float] = []
    lock = threading.Lock()

    def on_complete(_: np.ndarray, started: float) -> None:
        with lock:
            done.append(time.perf_counter() - started)

    adapter = open_device(bundle, device, on_complete, cpu_precision=cpu_precision)
    rng = np.random.default_rng(0)
    if np.dtype(adapter.input_dtype).kind == "f":
        batch = rng.standard_normal(adapter.input_shape).astype(adapter.input_dtype)
    else:  # counts in the input type's range
        batch = rng.integers(0, 256, adapter.input_shape).astype(adapter.input_dtype)
    adapter.infer(batch)  # first inference: allocation and caches stay out of the figures
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < seconds:
        adapter.start_async(batch, time.perf_counter())
        count += 1
    adapter.wait_all()
    elapsed = time.perf_counter() - start
    lat = np.asarray(done) * 1e3
    return {
        "model": {"name": bundle.name, "sha256": bundle.id},
        "device": adapter.device,
        "numerics": adapter.numerics,
        "host_measured": {
            "kind": "MEASURED on this host",
            "infer_requests": getattr(adapter, "jobs", None),
            "inferences": count,
            "throughput_fps": count / elapsed,
            "latency_ms": {p: float(np.percentile(lat, q)) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        },
        "estimated_myriadx": adapter.latency_estimate,
    }
