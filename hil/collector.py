"""The ground side of the results link: a PULL socket drained by a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

from runtime import protocol


class ResultCollector:
    """Receives every result as it comes and notes when, so latency is measured at the ground."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None, keys: Any = None,
                 acks: str | None = None):
        """``acks``: the runtime's acks endpoint (``[delivery] ground_ack``): each result taken is
        acknowledged there, so that the runtime counts it delivered."""
        ctx = context or zmq.Context.instance()
        self._sock = ctx.socket(zmq.PULL)
        self._sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:  # runtime.security.ClientKeys: the runtime protects its results socket
            keys.apply(self._sock)
        self._sock.connect(endpoint)
        self._acks = None
        if acks is not None:
            self._acks = ctx.socket(zmq.PUSH)
            self._acks.setsockopt(zmq.LINGER, 1000)
            if keys is not None:
                keys.apply(self._acks)
            self._acks.connect(acks)
        self.results: list[tuple[float, dict[str, Any], np.ndarray | None]] = []
        # (scene_id, tile_id, checksum) of each result acknowledged: the rig tells its own run's from
        # those a runtime held from before it (:meth:`acked_keys`); read while the thread adds to it
        self._acked: set[tuple[str, str, str]] = set()
        self._acked_lock = threading.Lock()
        self.malformed = 0
        # What each wait_for is waiting for: woken when a result makes it, rather than polling
        self._arrived = threading.Condition()
        self._wanted: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(50):
                continue
            # Results come in bursts (a runtime collects its infer requests in groups): the burst is
            # taken without a poll per result (no CPU saved that the benchmark could measure:
            # docs/throughput.md, "The thirtieth session"; one system call a result fewer).
            while not self._stop.is_set():
                try:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._take(frames)

    def _take(self, frames: list[bytes]) -> None:
        """Keep one result message and acknowledge it (a malformed one is counted and dropped)."""
        try:
            result, mask = protocol.decode_result(frames)
        except Exception:  # noqa: BLE001 - one bad message must not end the thread and every later result
            self.malformed += 1
            return
        self.results.append((time.monotonic(), result, mask))
        if self._wanted:  # read without the lock: a waiter registers before it looks at the results
            with self._arrived:
                if any(len(self.results) >= n for n in self._wanted):
                    self._arrived.notify_all()
        # Not a result the runtime holds for the ground ("acknowledge": false: a tile refused before it
        # was accepted, perhaps a corrupted copy of an accepted one): acking it would release that one's.
        if (self._acks is not None and result.get("acknowledge") is not False
                and result.get("scene_id") is not None and result.get("tile_id") is not None):
            key = [result.get("scene_id"), result.get("tile_id"), result.get("checksum")]
            if all(isinstance(k, str) for k in key) and \
                    self._ack(protocol.dumps({"v": protocol.PROTOCOL_VERSION, "ack": key})):
                with self._acked_lock:
                    self._acked.add((key[0], key[1], key[2]))

    def _ack(self, message: bytes) -> bool:
        """Send one acknowledgement, waiting for room as long as it takes but never past close():
        a PUSH socket with no live connection (a failed handshake drops it) blocks a plain send.
        Whether it was sent (False: closed first)."""
        assert self._acks is not None
        while not self._stop.is_set():
            try:
                self._acks.send(message, zmq.NOBLOCK)
                return True
            except zmq.Again:
                self._acks.poll(50, zmq.POLLOUT)
        return False

    def acked_keys(self) -> set[tuple[str, str, str]]:
        """The (scene_id, tile_id, checksum) of every result acknowledged so far, each once (a copy
        resent is acknowledged again, and a runtime counts the first), including results a runtime
        held from before this collector connected (a bare ``flightsim stream``'s, which no ground took)."""
        with self._acked_lock:
            return set(self._acked)

    def wait_for(self, n: int, timeout_s: float) -> bool:
        """Wait until at least ``n`` results have arrived; False if the timeout came first."""
        with self._arrived:  # woken by the result that makes n, not by a poll every 10 ms (a benchmark's ground)
            self._wanted.append(n)
            try:
                return self._arrived.wait_for(lambda: len(self.results) >= n, timeout_s)
            finally:
                self._wanted.remove(n)

    def wait_for_tiles(self, tile_ids: set[str], timeout_s: float, messages: int = 0, grace_s: float = 0.0,
                       settle_s: float = 1.0, check: Callable[[], None] | None = None) -> bool:
        """Wait until every tile of ``tile_ids`` has a result, counting results without a tile id
        (rejections of unreadable headers) towards the rest; False if the timeout came first.

        Counting tiles rather than messages keeps this right when a tile is answered twice (a
        duplicate) or a second send is answered once (a runtime that deduplicates). Once every tile
        is answered, it waits up to ``grace_s`` more for ``messages`` results in all (the second
        answers of duplicates, so that they are seen and reported rather than left on the socket).

        An anonymous result cannot say which tile it answers, and may answer none of them (a stray
        unreadable message): it ends the wait only once no result has come for ``settle_s``, so a
        tile's own result still on its way is not cut off. At the timeout, it counts as before.

        ``check``: called as it waits; what it raises ends the wait (the runtime process died).
        """
        deadline = time.monotonic() + timeout_s
        covered_at = None
        while True:
            results = list(self.results)
            seen = {r.get("tile_id") for _, r, _ in results}
            missing = len(tile_ids - seen)
            anonymous = sum(1 for _, r, _ in results if r.get("tile_id") is None)
            now = time.monotonic()
            if not missing:
                covered_at = covered_at or now
                if len(results) >= messages or now - covered_at >= grace_s:
                    return True
            elif missing <= anonymous and (now >= deadline or now - results[-1][0] >= settle_s):
                return True  # the tiles' own results stopped coming: the anonymous ones answer the rest
            if now >= deadline:
                return False
            if check is not None:
                check()
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)  # its waits are 50 ms polls that look at the stop flag
        self._sock.close()
        if self._acks is not None:
            self._acks.close()
