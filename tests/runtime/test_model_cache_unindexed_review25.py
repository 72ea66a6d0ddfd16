"""Review 25: cache entries the runtime's index does not name were kept for ever without a word.

``runtime.cache_index.prune`` removes only what its index names, so an entry written before the
index existed (or by another program) stays in ``[inference] cache_dir`` for ever. Removing it is not
provably safe (it may be the entry ``current`` imports; the folder may be shared), so it is reported
instead: ``cache_index.unindexed`` counts such entries and their bytes, and the store logs them as a
warning at each prune. A real OpenVINO cache folder written by real CPU compiles, a real runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime import cache_index, config
from runtime.bundle import read_bundle
from runtime.device import OpenVINOAdapter
from runtime.server import Settings
from tests.conftest import make_brightness_bundle, runtime_thread


def _entries(folder: Path) -> set[str]:
    """OpenVINO's entries in the cache folder (not the runtime's own dot files)."""
    return {p.name for p in folder.iterdir() if p.suffix == ".blob"}


def test_entries_the_index_does_not_name_are_reported_and_kept(
        tmp_path: Path, ipc_endpoints: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    make_brightness_bundle(old, size=32, name="old")
    make_brightness_bundle(new, size=48, name="new")
    cache = tmp_path / "store" / "cache"
    # an entry from before the index existed: a real compile into the folder, the index then gone
    OpenVINOAdapter(read_bundle(old), "CPU", lambda *_: None, infer_requests=1, cache_dir=str(cache)).close()
    (cache / cache_index.INDEX_NAME).unlink()
    (before,) = _entries(cache)
    size = (cache / before).stat().st_size
    assert cache_index.unindexed(str(cache)) == (1, size)

    settings = Settings.from_config(config.defaults(), device="CPU", store=str(tmp_path / "store"), **ipc_endpoints)
    with caplog.at_level(logging.WARNING, logger="runtime.store"), runtime_thread(settings, new):
        pass
    (mine,) = _entries(cache) - {before}  # the served bundle's own entry, which the index names
    assert before in _entries(cache)  # kept: it is not known to be the runtime's to remove
    assert cache_index.unindexed(str(cache)) == (1, size)  # only the old one: the new one is indexed
    said = [r.getMessage() for r in caplog.records if "its index does not name" in r.getMessage()]
    assert said and f"holds 1 entries ({size} bytes)" in said[-1] and str(cache) in said[-1], caplog.text


def test_a_folder_without_entries_reports_none(tmp_path: Path) -> None:
    assert cache_index.unindexed(str(tmp_path / "missing")) == (0, 0)
    (tmp_path / ".probe-x").write_bytes(b"x")  # the runtime's own dot files are not entries
    assert cache_index.unindexed(str(tmp_path)) == (0, 0)
