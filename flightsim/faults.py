"""Fault injection between the payload and the runtime: a wrapper around :class:`Streamer`.

A spec is a comma-separated list, e.g. ``"drop=0.05,duplicate=0.02,corrupt=0.02,truncate=0.01,
bad_checksum=0.01,reorder=0.05,restart=1@40,seed=3"``. Per-tile kinds take a probability; each tile
gets at most one of them (one draw per tile, so the probabilities must add up to at most 1):

=============== ====================================================== ===============================
kind            what happens to the tile                               what the runtime should do
=============== ====================================================== ===============================
``drop``        never leaves the payload's link                        nothing: lost by the link
``link_loss``   leaves the sender and is lost in transit               nothing; the sender resends it
                                                                       when no "done" comes (needs a
                                                                       streamer with resend_after_s)
``duplicate``   sent twice                                             one result: the copy is acked
                                                                       as a duplicate (a runtime that
                                                                       forgot the tile answers twice;
                                                                       the rig keeps one)
``corrupt``     lines of garbage in its pixels *before* framing (a     process it: the checksum is
                readout fault), so the checksum matches                right; the picture is wrong
``truncate``    its pixel frame cut short in transit                   reject ``wrong_byte_count``
``bad_checksum`` one bit of its pixel frame flipped in transit         reject ``bad_checksum``
``reorder``     sent after the next ``reorder_depth`` tiles            process it
=============== ====================================================== ===============================

``restart=N@K``: the sender restarts N times, after every K tiles sent (``1@40``: once, after the
40th). A restart drops the connection (messages not yet out are lost, acks of tiles in flight
never come) and, on reconnecting, the sender sends again every tile it had not seen acknowledged,
as a sender that keeps its unacknowledged tiles does. ``seed`` makes the draws repeatable.

The :class:`FaultLedger` records, per tile, the fault it got, so the rig can say fault by fault
what became of each tile.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flightsim.streamer import StreamLog, Streamer
from flightsim.tiles import Tile
from runtime.config import load_defaults

DEFAULTS = load_defaults(Path(__file__).with_name("defaults.toml"))["faults"]

#: Faults drawn per tile, in the order of the cumulative draw.
TILE_FAULTS = ("drop", "duplicate", "corrupt", "truncate", "bad_checksum", "reorder", "link_loss")
#: Every fault kind a spec may name.
FAULT_KINDS = (*TILE_FAULTS, "restart")
_LINK_LOSS_NEEDS_RESENDS = ("link_loss needs a streamer that resends (resend_after_s; hil: [run] resend_after_s > 0): "
                            "only a resend brings back a tile lost in transit; valid without resends: drop")


@dataclass
class FaultSpec:
    """Probabilities of the per-tile faults, the restart schedule and the seed."""

    rates: dict[str, float] = field(default_factory=dict)
    restarts: int = 0
    restart_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_seed(self.seed)
        # Every spec's checks, parsed or built directly (hil.run takes a FaultSpec as well as a text):
        # unchecked, an unknown kind was silently not injected, and restart_every=0 failed mid-stream
        # (a ZeroDivisionError after the first tile went) rather than before the run.
        for key, p in self.rates.items():
            if key not in TILE_FAULTS:
                raise ValueError(f"unknown fault {key!r}; valid: {list(FAULT_KINDS)} and seed")
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
                raise ValueError(f"fault {key}={p!r}: a probability must be in [0, 1]")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {sum(self.rates.values()):.3f}; each tile gets at most "
                             "one fault, so they must add up to at most 1")
        # Integers, as parse gives them: restart_every=NaN passed "< 1" and no restart was ever made (the
        # "% K == 0" of injection never held), 2.5 restarted after every 5 tiles, and restarts=1.5 made two.
        for n in (self.restarts, self.restart_every):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                raise ValueError(f"restart={self.restarts}@{self.restart_every}: expected N@K with integers N >= 0 "
                                 "and K >= 1")
        if self.restarts and (self.restarts < 0 or self.restart_every < 1):
            raise ValueError(f"restart={self.restarts}@{self.restart_every}: expected N@K with N >= 0 and K >= 1")

    @classmethod
    def parse(cls, text: str, seed: int | None = None) -> FaultSpec:
        """Read ``kind=value,...``; ``seed`` given here wins over one in the text.

        Raises:
            ValueError: for an unknown kind (listing the valid ones), a kind given twice, a
                probability outside [0, 1], probabilities adding up to more than 1, a restart not of
                the form ``N@K``, or a seed (in the text or ``seed``) that is not a non-negative
                integer.
        """
        spec = {"rates": {}, "restarts": 0, "restart_every": 0, "seed": 0}  # checked as a whole by __post_init__
        seen: set[str] = set()
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, eq, value = (s.strip() for s in item.partition("="))
            if not eq:
                raise ValueError(f"fault {item!r} is not kind=value; valid kinds: {list(FAULT_KINDS)} and seed")
            if key in seen:
                raise ValueError(f"fault spec {text!r}: repeated key {key!r}; give each kind (and seed) once")
            seen.add(key)
            if key == "seed":
                try:
                    spec["seed"] = _check_seed(int(value))
                except ValueError:
                    raise ValueError(f"fault seed must be a non-negative integer; got {value}") from None
            elif key == "restart":
                n, at, k = value.partition("@")
                try:
                    spec["restarts"], spec["restart_every"] = int(n), int(k)
                except ValueError:
                    raise ValueError(f"restart={value!r}: expected N@K (N restarts, one after every K tiles)") from None
                if not at or spec["restarts"] < 0 or spec["restart_every"] < 1:
                    raise ValueError(f"restart={value!r}: expected N@K with N >= 0 and K >= 1")
            elif key in TILE_FAULTS:
                try:
                    spec["rates"][key] = float(value)
                except ValueError:
                    raise ValueError(f"fault {key}={value!r}: not a probability") from None
            else:
                raise ValueError(f"unknown fault {key!r}; valid: {list(FAULT_KINDS)} and seed")
        if seed is not None:
            spec["seed"] = seed
        return cls(**spec)

    def __str__(self) -> str:
        items = [f"{k}={v:g}" for k, v in self.rates.items()]
        if self.restarts:
            items.append(f"restart={self.restarts}@{self.restart_every}")
        return ",".join([*items, f"seed={self.seed}"])


def _check_seed(seed: Any) -> int:
    """``seed`` as an int, or ValueError: numpy's generator takes only a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"fault seed must be a non-negative integer; got {seed!r}")
    return int(seed)


@dataclass
class FaultLedger:
    """What was done to which tile: ``faults[tile_id]`` is its kind; restarts list what they caught."""

    faults: dict[str, str] = field(default_factory=dict)
    restarts: list[dict[str, Any]] = field(default_factory=list)

    def tiles_with(self, kind: str) -> list[str]:
        return [t for t, k in self.faults.items() if k == kind]

    @property
    def dropped(self) -> set[str]:
        return set(self.tiles_with("drop"))


class FaultInjector:
    """Sends tiles through ``streamer`` with the faults of ``spec``; a drop-in for ``Streamer.stream``."""

    def __init__(self, streamer: Streamer, spec: FaultSpec | str):
        self.streamer = streamer
        self.spec = FaultSpec.parse(spec) if isinstance(spec, str) else spec
        self.ledger = FaultLedger()
        self._rng = np.random.default_rng(self.spec.seed)
        self._sent = 0
        self._frames: dict[str, list[bytes]] = {}  # unacknowledged tiles' frames, for a restart's resend

    def _draw(self, tile: Tile) -> str | None:
        u = self._rng.random()
        edge = 0.0
        for kind in TILE_FAULTS:
            edge += self.spec.rates.get(kind, 0.0)
            if u < edge:
                return kind
        return None

    def _reordered(self, tiles: Iterable[Tile]) -> Iterator[Tile]:
        """Draw each tile's fault; hold ``reorder`` tiles back behind the next few."""
        depth = int(DEFAULTS["reorder_depth"])
        held: list[tuple[int, Tile]] = []
        for tile in tiles:
            kind = self._draw(tile)
            if kind:
                self.ledger.faults[tile.tile_id] = kind
            for entry in list(held):
                if entry[0] <= 0:
                    held.remove(entry)
                    yield entry[1]
            held = [(n - 1, t) for n, t in held]
            if kind == "reorder":
                held.append((depth, tile))
            else:
                yield tile
        for _, tile in held:
            yield tile

    def _send(self, tile: Tile, want_mask: bool) -> None:
        kind = self.ledger.faults.get(tile.tile_id)
        s = self.streamer
        if kind == "drop":
            pass  # the link loses it: nothing goes out
        elif kind == "link_loss":
            if s.resend_after_s is None:
                raise ValueError(_LINK_LOSS_NEEDS_RESENDS)
            # Kept like any tile sent: a restart before its resend sends it again with the rest.
            self._out(tile.tile_id, tile.frames(want_mask, s.want_done), lost_in_transit=True)
        elif kind == "corrupt":
            pixels = tile.pixels.copy()
            lo, hi = DEFAULTS["corrupt_lines"]
            n = int(self._rng.integers(lo, hi + 1))
            r = int(self._rng.integers(0, max(1, pixels.shape[1] - n + 1)))
            info = np.iinfo(pixels.dtype)
            pixels[:, r:r + n] = self._rng.integers(0, info.max + 1, pixels[:, r:r + n].shape, dtype=pixels.dtype)
            corrupted = Tile(**{**tile.__dict__, "pixels": pixels})
            self._out(tile.tile_id, corrupted.frames(want_mask, s.want_done))
        else:
            frames = tile.frames(want_mask, s.want_done)  # the streamer's promise about "done"
            if kind == "truncate":
                keep = int(self._rng.integers(0, len(frames[1])))
                frames = [frames[0], frames[1][:keep]]
            elif kind == "bad_checksum":
                data = bytearray(frames[1])
                bit = int(self._rng.integers(0, 8 * len(data)))
                data[bit // 8] ^= 1 << (bit % 8)
                frames = [frames[0], bytes(data)]
            self._out(tile.tile_id, frames)
            if kind == "duplicate":
                s.send_frames(tile.tile_id, frames)
        self._sent += 1
        spec = self.spec
        if spec.restarts and self._sent % spec.restart_every == 0 and len(self.ledger.restarts) < spec.restarts:
            self._restart()

    def _out(self, tile_id: str, frames: list[bytes], lost_in_transit: bool = False) -> None:
        self.streamer.send_frames(tile_id, frames, lost_in_transit=lost_in_transit)
        acked = self.streamer.log.acks
        self._frames = {t: f for t, f in self._frames.items() if t not in acked}
        self._frames[tile_id] = frames

    def _restart(self) -> None:
        unacked = self.streamer.reconnect()
        self.ledger.restarts.append({"after_tile": self._sent, "in_flight": list(unacked)})
        for tile_id in unacked:
            if tile_id in self._frames:
                self.streamer.send_frames(tile_id, self._frames[tile_id])

    def stream(self, tiles: Iterable[Tile], want_mask: bool = False, total: int | None = None,
               progress: bool = False) -> StreamLog:
        """As :meth:`Streamer.stream`, with the faults; the ledger says which tile got which.

        Raises:
            ValueError: before any tile, for ``link_loss`` on a streamer that does not resend (not on
                the first tile drawn for it: a small rate on a short stream may draw none, and the
                spec was then reported as applied by a sender that could not apply it).
        """
        if self.spec.rates.get("link_loss") and self.streamer.resend_after_s is None:
            raise ValueError(_LINK_LOSS_NEEDS_RESENDS)
        return self.streamer.stream(self._reordered(tiles), want_mask=want_mask, total=total,
                                    progress=progress, send=self._send)


def fault_outcomes(ledger: FaultLedger, first_status: dict[str, str], results_per_tile: dict[str, int],
                   deduplicated: set[str] | None = None) -> dict[str, Any]:
    """Per fault kind: how many tiles got it, and what became of them.

    ``first_status[tile_id]`` is ``"processed"`` or ``"rejected:<reason>"`` from the tile's first
    result; ``results_per_tile`` counts every result; ``deduplicated`` are the tiles whose second
    copy the runtime acknowledged as a duplicate (and did not process again). Outcomes:
    ``processed``, ``rejected:<reason>``, ``lost_by_link`` (no result, and the fault is one that
    loses tiles), ``lost`` (no result otherwise: a fault the rig could not explain),
    ``duplicate_result_ignored`` (a second result, not counted), ``duplicate_dropped_by_runtime``.
    ``restart``: ``tiles_in_flight`` counts distinct tiles (one caught by two restarts once), and
    ``resent`` every resend.
    """
    deduplicated = deduplicated or set()

    def outcomes_of(tiles: list[str], if_lost: str) -> dict[str, int]:
        outcomes: Counter[str] = Counter()
        for t in tiles:
            outcomes[first_status.get(t) or if_lost] += 1
            extra = results_per_tile.get(t, 0) - 1
            if extra > 0:
                outcomes["duplicate_result_ignored"] += extra
            if t in deduplicated:
                outcomes["duplicate_dropped_by_runtime"] += 1
        return dict(outcomes)

    report: dict[str, Any] = {}
    for kind in sorted(set(ledger.faults.values())):
        tiles = ledger.tiles_with(kind)
        report[kind] = {"injected": len(tiles),
                        "outcomes": outcomes_of(tiles, "lost_by_link" if kind == "drop" else "lost")}
    if ledger.restarts:
        # A tile caught by two restarts is one tile (resent twice): counted once, resends apart.
        resent = [t for r in ledger.restarts for t in r["in_flight"]]
        caught = list(dict.fromkeys(resent))
        report["restart"] = {"injected": len(ledger.restarts), "tiles_in_flight": len(caught),
                             "resent": len(resent), "outcomes": outcomes_of(caught, "lost"),
                             "after_tiles": [r["after_tile"] for r in ledger.restarts]}
    return report
