"""The runtime's counters, recent latencies and events, behind their own lock.

Any thread counts and raises events here; the main loop alone publishes them on the telemetry
socket (ZeroMQ sockets are not thread-safe), and ``status`` reads a consistent snapshot.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from runtime.interface import EVENTS

#: Recent tile latencies kept for the percentiles: bounded, so a soak does not grow memory.
LATENCY_WINDOW = 1000


class Telemetry:
    """Counters by name, rejections by reason, the last latencies, and events awaiting publication."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def reject(self, reason: str) -> None:
        """A tile refused with ``reason`` (a :class:`runtime.protocol.Reason` value)."""
        with self._lock:
            self._counts["tiles_rejected"] += 1
            self._rejected[reason] += 1

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latencies.append(seconds)

    def snapshot(self) -> tuple[dict[str, int], dict[str, int], dict[str, float | None]]:
        """(counts, rejections by reason, {"p50", "p99"} latency in ms or None) at one instant."""
        with self._lock:
            counts, rejected = dict(self._counts), dict(self._rejected)
            lat = np.array(self._latencies) * 1e3
        percentiles = {f"p{q}": float(np.percentile(lat, q)) if lat.size else None for q in (50, 99)}
        return counts, rejected, percentiles

    def event(self, name: str, **fields: Any) -> None:
        """Raise event ``name`` (one of :data:`runtime.interface.EVENTS`, which gives its severity)."""
        self._events.put({"event": name, "severity": EVENTS[name], "time": time.time(), **fields})

    def pending_events(self) -> Iterator[dict[str, Any]]:
        """The events raised since the last call, oldest first."""
        while True:
            try:
                yield self._events.get_nowait()
            except queue.Empty:
                return
