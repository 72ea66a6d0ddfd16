"""Ground-acknowledged delivery: a result counts as delivered when the ground says it has it.

Why: a PUSH socket hands a result to ZeroMQ, which may hold it for a reader that never reads, or
lose it when that reader disconnects; a sender told "done" at that point forgets a tile whose result
nobody has (issue 13: 300 of 300 "done", 0 results at the reconnected reader). With ``[delivery]
ground_ack = true`` the runtime binds an ``acks`` socket (PULL); the ground sends
``{"v": 1, "ack": [scene_id, tile_id, checksum]}`` for each result it has taken
(:class:`hil.collector.ResultCollector` does with ``acks=``). Until then the result waits here:

* its tile stays *inside* the runtime, so the ``max_tiles_inside`` bound also bounds results
  waiting for the ground (overload backs up to the senders, never into memory);
* it is sent again every ``ground_ack_timeout_s`` (to whichever ground is connected then; the ground
  keeps one copy per tile key);
* only the ground's ack releases it and sends its tile's "done" to the sender. At shutdown,
  results still unacknowledged after ``shutdown_grace_s`` are given up on (``results_undeliverable``):
  their tiles never got "done", so their senders resend them to the next runtime.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str, str]


@dataclass
class Waiting:
    """A result sent and not yet acknowledged, with what its acknowledgement releases."""

    frames: list[bytes]
    identity: bytes   # the tile's sender, told "done" on the ack (empty: nobody to tell)
    done: bytes
    sent_at: float
    sends: int = 1


class AwaitingGround:
    """The ledger of results the ground has not acknowledged yet (thread-safe)."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._items: OrderedDict[Key, Waiting] = OrderedDict()
        self._lock = threading.Lock()

    def sent(self, key: Key, frames: list[bytes], identity: bytes, done: bytes) -> bool:
        """Record a result just sent; False when one for this key is already waiting (a duplicate
        result: the first one's acknowledgement releases the tile)."""
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = Waiting(frames, identity, done, time.monotonic())
            return True

    def acked(self, key: Key) -> Waiting | None:
        """The entry the ground acknowledged, removed; None for an unknown or repeated ack."""
        with self._lock:
            return self._items.pop(key, None)

    def overdue(self) -> list[tuple[Key, Waiting]]:
        """Entries sent longer than ``timeout_s`` ago, marked as sent again now (oldest first).

        The ledger is kept in order of last sending (a resent entry moves to the end), so this
        reads only the overdue head: it runs after every result the runtime sends.
        """
        now = time.monotonic()
        out = []
        with self._lock:
            for key, item in self._items.items():
                if now - item.sent_at < self.timeout_s:
                    break
                out.append((key, item))
            for key, item in out:
                item.sent_at, item.sends = now, item.sends + 1
                self._items.move_to_end(key)
        return out

    def give_up(self) -> list[Waiting]:
        """Every entry, removed (at shutdown, after the grace period)."""
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def report(self) -> dict[str, Any]:
        with self._lock:
            oldest = min((i.sent_at for i in self._items.values()), default=None)
            return {"awaiting_ground": len(self._items),
                    "oldest_s": None if oldest is None else round(time.monotonic() - oldest, 3)}
