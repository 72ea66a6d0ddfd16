"""The ground side of the results link: a PULL socket drained by a background thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import zmq

from runtime import protocol


class ResultCollector:
    """Receives every result as it comes and notes when, so latency is measured at the ground."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None):
        self._sock = (context or zmq.Context.instance()).socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self.results: list[tuple[float, dict[str, Any], np.ndarray | None]] = []
        self.malformed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(50):
                continue
            frames = self._sock.recv_multipart()
            try:
                result, mask = protocol.decode_result(frames)
            except ValueError:
                self.malformed += 1
                continue
            self.results.append((time.monotonic(), result, mask))

    def wait_for(self, n: int, timeout_s: float) -> bool:
        """Wait until at least ``n`` results have arrived; False if the timeout came first."""
        deadline = time.monotonic() + timeout_s
        while len(self.results) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.results) >= n

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()
