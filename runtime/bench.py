"""``runtime benchmark``: host latency and throughput of a bundle on a device, measured, beside the
Myriad X latency the cost model estimates. The two are different quantities and never mixed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import read_bundle
from runtime.config import check_number
from runtime.device import open_device

#: The name under which a bad length of measurement is refused (the CLI's flag and config key).
SECONDS_SETTING = "benchmark --seconds ([benchmark] seconds)"


def check_seconds(seconds: Any) -> float:
    """``seconds`` as a float if it is a finite number > 0; else a ValueError saying so.

    Why: with ``seconds <= 0`` no inference was timed and the percentiles of an empty list raised
    an IndexError; the CLI also took ``--seconds 0`` for "not given" and ran the config's length.
    """
    return float(check_number(SECONDS_SETTING, seconds, 0.0, strict=True))


def benchmark(model: str | Path, device: str, seconds: float, cpu_precision: str,
              profile: str | None = None) -> dict[str, Any]:
    """Run the bundle on random input for ``seconds`` (async, all requests busy) and report.

    At least one timed inference runs, however short ``seconds`` is, so every figure exists.

    Raises:
        ValueError: if ``seconds`` is not a finite number > 0 (before the device is opened).
    """
    seconds = check_seconds(seconds)
    bundle = read_bundle(model)
    done: list[float] = []
    lock = threading.Lock()

    def on_complete(_: np.ndarray, started: float) -> None:
        with lock:
            done.append(time.perf_counter() - started)

    adapter = open_device(bundle, device, on_complete, cpu_precision=cpu_precision, profile=profile)
    rng = np.random.default_rng(0)
    if np.dtype(adapter.input_dtype).kind == "f":
        batch = rng.standard_normal(adapter.input_shape).astype(adapter.input_dtype)
    else:  # counts in the input type's range
        batch = rng.integers(0, 256, adapter.input_shape).astype(adapter.input_dtype)
    adapter.infer(batch)  # first inference: allocation and caches stay out of the figures
    start = time.perf_counter()
    count = 0
    while True:  # at least once: a length shorter than one inference still measures one
        adapter.start_async(batch, time.perf_counter())
        count += 1
        if time.perf_counter() - start >= seconds:
            break
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
        # the cost model's estimate without its per-layer list; its "unpriced_ops" names the op
        # types priced by bytes alone (the CLI prints them: the total is a lower bound then)
        "estimated_myriadx": adapter.latency_estimate,
    }
