"""Search state on disk: one record per finished candidate, written as it finishes; resume by replay.

Layout of a search directory ``OUT``::

    OUT/search.json              the configuration the search runs with (checked on resume)
    OUT/records/<key>.json       one per finished candidate (written atomically: temp file + rename)
    OUT/candidates/<key>/        its bundle and hil reports
    OUT/data/                    training and validation scenes
    OUT/generations.json         populations and fitness per generation (rewritten each generation)

Resume is a replay: the evolutionary strategy is deterministic given its seed and the fitness of
what it has evaluated (each generation draws from ``default_rng([seed, generation])``), so a rerun
walks the same generations, finds every finished candidate in the store and trains only the ones
without a record. A search killed mid-generation loses only the candidates that were still training;
none is repeated, none lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runtime.atomic import write_atomic

#: Written into every candidate record (search.candidate), so a resumed search can tell an old
#: record format from a new one: a record of another version is refused (:func:`read_record`).
RECORD_VERSION = 1

#: Settings that may change between a search and its resumption without changing any candidate's
#: result (more generations add candidates; the final training and the second stage come after the search),
#: except where a [final] change moves the space's parameter budget (search.evolution.budget_gates):
#: checked apart, by check_resumable's ``space``.
RESUMABLE_CHANGES = {("run", "workers"), ("run", "ray_address"), ("evolution", "generations"),
                     ("export", "discriminate"), ("export", "discriminator_cut_by"), ("final", "fp32_epochs"), ("final", "aligned_epochs"),
                     ("final", "train"), ("final", "export"), ("final", "over_limit"),
                     # applied when the flight model is chosen, not stored in the records (search.fitness)
                     ("fitness", "latency_limit_ms")}


@contextlib.contextmanager
def search_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` while a search runs there: a second search on the same folder is refused
    (two trained the same genomes into the same candidate folders, and one shipped a bundle it had not
    measured). An flock, so a search killed (even by SIGKILL) leaves nothing to clear by hand.

    Raises:
        ValueError: naming the process that holds the folder.
    """
    path = Path(out) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ValueError(f"{out} is in use by another search (pid {holder}); wait for it, or use another --out"
                             ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a killed writer) never leaves a half-written file."""
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode())


def rooted(record: dict[str, Any], root: Path) -> dict[str, Any]:
    """``record`` with its bundle where it is now: ``root/candidates/<key>/bundle`` (``root`` the search
    folder, or its ``final`` folder for the final training's record) when that holds one. A record
    keeps the path its search was given, relative to where that ran or absolute, and a search resumed
    from elsewhere, or moved (or copied), must not read, or ship, the bundles of another folder."""
    if record.get("bundle") and record.get("key"):
        here = Path(root) / "candidates" / record["key"] / "bundle"
        if here.is_dir():
            record = {**record, "bundle": str(here)}
    return record


def read_record(path: Path, root: Path) -> dict[str, Any]:
    """The record at ``path``, :func:`rooted` at ``root``, if it is of this code's
    :data:`RECORD_VERSION`. A record without a version is taken as this one's (the search has
    written one into every record since the first format; only hand-made records, as tests', lack it).

    Raises:
        ValueError: for a record of another version, naming both (no migration exists: a record
            of another format read as this one's would rank candidates on fields it lacks or means
            otherwise).
    """
    record = json.loads(Path(path).read_text())
    version = record.get("version", RECORD_VERSION)
    if version != RECORD_VERSION:
        raise ValueError(f"{path} is a record of version {version!r}, and this search reads version "
                         f"{RECORD_VERSION} only; resume it with the code that wrote it, or use a new --out")
    return rooted(record, root)


class CandidateStore:
    """Finished candidates keyed by genome key: the cache that keeps any genome from training twice."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.dir = self.out / "records"
        self.dir.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.dir / f"{key}.json"
        return read_record(path, self.out) if path.exists() else None

    def put(self, record: dict[str, Any]) -> None:
        write_json_atomic(self.dir / f"{record['key']}.json", record)

    def __contains__(self, key: str) -> bool:
        return (self.dir / f"{key}.json").exists()

    def all(self) -> list[dict[str, Any]]:
        return [read_record(p, self.out) for p in sorted(self.dir.glob("*.json"))]


def check_resumable(out: Path, cfg: dict[str, Any], write: bool = True,
                    space: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """Record ``cfg`` in ``OUT/search.json``, or check it matches the one a previous run recorded.

    With ``write=False`` only the check: the search validates its config before it records it
    (:func:`record_config`), so that a config refused on its values does not become the folder's.
    ``space``: what of a config decides the search's space beyond its own tables (the search passes
    :func:`search.evolution.budget_gates`: a [final] change can move the parameter budget); a
    resumable change that changes it is refused too.

    Raises:
        ValueError: listing the settings that differ (other than :data:`RESUMABLE_CHANGES`). A
            setting the recorded config lacks (one added to search/defaults.toml since) counts as
            its default, so a search resumes across such an addition only where the value is the default.
    """
    path = Path(out) / "search.json"
    if path.exists():
        from search.config import load_config

        old, defaults = json.loads(path.read_text())["config"], load_config()

        def recorded(t: str, k: str) -> Any:
            # A setting added to the defaults after that search began: it ran with what the default does.
            table = old.get(t, {})
            return table[k] if k in table else defaults.get(t, {}).get(k)

        diffs = [f"{t}.{k}: {recorded(t, k)!r} -> {v!r}" for t, table in cfg.items() if isinstance(table, dict)
                 for k, v in table.items() if (t, k) not in RESUMABLE_CHANGES and recorded(t, k) != v]
        if space is not None:  # what a resumable setting may still change: the space
            merged = {t: {**table, **old.get(t, {})} if isinstance(table, dict) else old.get(t, table)
                      for t, table in defaults.items()}
            if space(merged) != space(cfg):
                diffs.append(f"the search space ({getattr(space, '__name__', 'space')}): {space(merged)!r} -> "
                             f"{space(cfg)!r}")
        if diffs:
            raise ValueError(f"{out} holds a search with other settings; use a new --out or the same config. "
                             f"Differences: {diffs}")
    if write:
        record_config(out, cfg)


def record_config(out: Path, cfg: dict[str, Any]) -> None:
    """Write ``OUT/search.json``: the configuration the search runs with, checked on resume."""
    write_json_atomic(Path(out) / "search.json", {"config": cfg})
