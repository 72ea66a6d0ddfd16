"""Which bundle each of OpenVINO's model cache entries belongs to, so that the store can prune them.

Why: OpenVINO writes one entry per model, device and configuration it compiled with ``CACHE_DIR``
(``<hash>.blob``, the hash a 64-bit number of its own that Python cannot compute) and never removes
one; every bundle a payload ever served left its entries on the flash for ever. The runtime keeps an
index of its own in the cache folder (:data:`INDEX_NAME`, JSON): for each compile it made there (a key
of the bundle's IR checksums, the device, the configuration and the twin's profile: what OpenVINO
hashes, so that a second bundle with the same IR, another threshold say, finds the entry the first
wrote), the entry files that compile wrote and the bundles that used them. The model store
(:class:`runtime.store.BundleStore`) prunes, whenever it prunes its bundles (each install, each
roll-back, each start), every entry whose bundles it no longer holds.

Only files the index names are ever removed: a folder without the index (one that is not ours, or a
cache written before the index existed) is left as it is, and so is any file the index does not name
(another program's, or an entry imported by a compile this runtime could not attribute). A lost
entry costs a compile at the next open, never a failure, so the index is written on a best-effort
basis: a failure to read or write it is a warning.

Entries the index does not name are reported, not removed (:func:`unindexed`; the store logs them at
each prune). Removing them is not provably safe even in the runtime's own ``[inference] cache_dir``:
an entry written before the index existed may be the one ``current`` imports at every open (an import
writes nothing, so the runtime cannot tell which file it read, and records none), and a folder the
configuration names may be shared with another program. Their count and size let an operator who
knows the folder is the runtime's alone remove them by hand (the next open compiles again).

The module imports no OpenVINO: the store uses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from runtime.atomic import write_atomic

__all__ = ["INDEX_NAME", "Snapshot", "compile_key", "prune", "record", "snapshot", "unindexed", "written"]

log = logging.getLogger(__name__)

#: The index's file in the cache folder (a dot file: never taken for an entry, see :func:`snapshot`).
INDEX_NAME = ".runtime-cache-index.json"
#: The index's format, written into it; an index of another format is left alone, never pruned by.
INDEX_FORMAT = 1

#: What a file's state is taken to be: size, mtime, ctime (ns) and inode.
Snapshot = dict[str, tuple[int, int, int, int]]

#: One index writer at a time in the process (a compile in a reopen thread, a prune on an uplink).
_LOCK = threading.Lock()


def compile_key(ir: dict[str, str], device: str, config: dict[str, Any], profile: str | None = None) -> str:
    """The index's key of one compile: what OpenVINO's entry hash depends on, as far as the runtime
    knows it (the IR's checksums, the device, the configuration, and the twin's profile, which decides
    the rewritten graph), so that the key of a compile determines its entry."""
    text = json.dumps({"ir": ir, "device": device, "config": config, "profile": profile}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def snapshot(cache_dir: str) -> Snapshot:
    """The entry files in ``cache_dir`` with their state; dot files (the index, its temporary file, a
    write probe) are not entries. An unreadable folder has none."""
    out: Snapshot = {}
    try:
        with os.scandir(cache_dir) as it:
            for entry in it:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                out[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    except OSError:
        return {}
    return out


def written(before: Snapshot, after: Snapshot) -> set[str]:
    """The entries written between two snapshots: new ones, and ones rewritten in place (OpenVINO
    compiles over a damaged entry under the same name, so a rewrite must count as a compile)."""
    return {name for name, state in after.items() if before.get(name) != state}


def _read(cache_dir: str) -> dict[str, Any] | None:
    """The index in ``cache_dir``; None if there is none, or it is not one this runtime can read."""
    path = Path(cache_dir) / INDEX_NAME
    try:
        index = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("model cache index %s cannot be read (%s): its entries are kept", path, exc)
        return None
    if not (isinstance(index, dict) and index.get("format") == INDEX_FORMAT
            and isinstance(index.get("compiles"), dict)):
        log.warning("model cache index %s is not of format %d: its entries are kept", path, INDEX_FORMAT)
        return None
    return index


def _write(cache_dir: str, index: dict[str, Any]) -> None:
    write_atomic(Path(cache_dir) / INDEX_NAME, json.dumps(index, indent=1, sort_keys=True).encode())


def record(cache_dir: str, key: str, bundle_id: str, files: set[str]) -> None:
    """Note that ``bundle_id`` used the compile ``key`` in ``cache_dir``, whose entries are ``files``
    (those it wrote; none for an import, whose entry the key already names if this runtime wrote it).

    An import of an entry the index does not know (written before the index, or by someone else)
    records nothing: that entry is not the runtime's to remove.
    """
    with _LOCK:
        index = _read(cache_dir)
        if index is None:
            if (Path(cache_dir) / INDEX_NAME).exists():  # one that cannot be read: not overwritten
                return
            index = {"format": INDEX_FORMAT, "compiles": {}}
        compiles = index["compiles"]
        if key not in compiles and not files:
            return
        entry = compiles.setdefault(key, {"files": [], "bundles": []})
        entry["files"] = sorted(set(entry["files"]) | files)
        entry["bundles"] = sorted(set(entry["bundles"]) | {bundle_id})
        try:
            _write(cache_dir, index)
        except OSError as exc:
            log.warning("model cache index in %s not written (%s): these entries will not be pruned", cache_dir, exc)


def prune(cache_dir: str, keep: set[str]) -> list[str]:
    """Remove from ``cache_dir`` the entries the index names whose bundles are all outside ``keep``
    (the bundle ids the store still holds); returns the names of the files removed.

    A folder without an index of ours loses nothing. A file that a compile kept names too stays. A
    file that cannot be removed stays named in the index, to be tried again at the next prune.
    """
    with _LOCK:
        index = _read(cache_dir)
        if index is None:
            return []
        compiles: dict[str, Any] = index["compiles"]
        kept: dict[str, Any] = {}
        dropped: set[str] = set()
        for key, entry in compiles.items():
            bundles = set(entry.get("bundles", [])) & keep
            if bundles:
                kept[key] = {"files": entry.get("files", []), "bundles": sorted(bundles)}
            else:
                dropped |= set(entry.get("files", []))
        dropped -= {name for entry in kept.values() for name in entry["files"]}
        removed, stuck = [], set()
        for name in sorted(dropped):
            if os.sep in name or name.startswith("."):  # an index edited by hand: never outside the folder
                continue
            try:
                os.unlink(os.path.join(cache_dir, name))
                removed.append(name)
            except FileNotFoundError:  # already gone
                pass
            except OSError:
                stuck.add(name)
        if stuck:  # kept in the index under no bundle: removed by the next prune that can
            kept["unremoved"] = {"files": sorted(stuck), "bundles": []}
        if kept != compiles:
            with contextlib.suppress(OSError):  # a read-only cache: nothing was removed either
                _write(cache_dir, {"format": INDEX_FORMAT, "compiles": kept})
        if removed:
            log.info("model cache %s: removed %d entries of bundles the store no longer holds", cache_dir, len(removed))
        return removed


def unindexed(cache_dir: str) -> tuple[int, int]:
    """(how many, how many bytes) of the entry files in ``cache_dir`` that the runtime's index does
    not name: kept by :func:`prune` for ever (see the module's docstring for why they are reported
    rather than removed). Every entry counts in a folder without a readable index of ours."""
    with _LOCK:  # not between a prune's removals and its rewrite of the index
        index = _read(cache_dir)
        named = set() if index is None else {name for entry in index["compiles"].values()
                                             for name in entry.get("files", [])}
        others = {name: state for name, state in snapshot(cache_dir).items() if name not in named}
    return len(others), sum(state[0] for state in others.values())
