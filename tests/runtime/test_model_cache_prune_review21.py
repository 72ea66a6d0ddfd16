"""Review 21: OpenVINO's model cache is pruned with the store's bundles (runtime/cache_index.py).

OpenVINO never removes an entry, and every bundle a payload ever served left its ``<hash>.blob`` in
``{store}/cache`` for ever. The runtime now keeps an index of which bundle each entry it wrote belongs
to, and the store removes the entries of bundles it no longer holds (at each install, roll-back and
start); ``current``'s and ``previous``'s stay, and nothing is removed from a folder without the index.
All through a real runtime: uplinks over ZeroMQ, real CPU compiles, the default ``{store}/cache``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime import config
from runtime.bundle import read_bundle, rewrite_bundle, rewritable_manifest
from runtime.cache_index import INDEX_NAME
from runtime.client import ControlClient
from runtime.server import Settings
from tests.conftest import make_brightness_bundle, runtime_thread


def _entries(folder: Path) -> set[str]:
    """OpenVINO's entries in the cache folder (not the runtime's own dot files)."""
    return {p.name for p in folder.iterdir() if p.suffix == ".blob"}


def _index(folder: Path) -> dict[str, set[str]]:
    """entry file -> the bundles the index says use it."""
    compiles = json.loads((folder / INDEX_NAME).read_bytes())["compiles"]
    out: dict[str, set[str]] = {}
    for entry in compiles.values():
        for name in entry["files"]:
            out.setdefault(name, set()).update(entry["bundles"])
    return out


@pytest.fixture()
def bundles(tmp_path: Path) -> dict[str, Path]:
    """Three models with different IRs (tile sizes), and one with model A's IR and another threshold."""
    out = {name: tmp_path / "models" / name for name in ("a", "b", "c")}
    for size, (name, path) in zip((32, 48, 64), out.items()):
        make_brightness_bundle(path, size=size, name=name)
    manifest = rewritable_manifest(read_bundle(out["a"]))
    manifest["name"], manifest["output"]["threshold"] = "a2", 0.6
    out["a2"] = tmp_path / "models" / "a2"
    rewrite_bundle(read_bundle(out["a"]), out["a2"], manifest)
    return out


def _settings(store: Path, endpoints: dict[str, str]) -> Settings:
    return Settings.from_config(config.defaults(), device="CPU", store=str(store), **endpoints)


def test_entries_of_bundles_the_store_pruned_are_removed_and_current_and_previous_kept(
        tmp_path: Path, bundles: dict[str, Path], ipc_endpoints: dict[str, str]) -> None:
    store = tmp_path / "store"
    cache = store / "cache"
    ids = {name: read_bundle(path).id for name, path in bundles.items()}
    with runtime_thread(_settings(store, ipc_endpoints), bundles["a"]):
        client = ControlClient(ipc_endpoints["control"])
        (entry_a,) = _entries(cache)
        client.load_model(bundles["b"])
        (entry_b,) = _entries(cache) - {entry_a}
        assert _index(cache) == {entry_a: {ids["a"]}, entry_b: {ids["b"]}}
        # a2 has a's IR: OpenVINO's hash is the same, so it imports a's entry, and now holds it; a
        # itself left the store (current a2, previous b), its entry did not
        assert client.load_model(bundles["a2"])["load"]["from"] == "cache"
        assert _entries(cache) == {entry_a, entry_b}
        assert _index(cache) == {entry_a: {ids["a2"]}, entry_b: {ids["b"]}}
        # current c, previous a2: b is pruned from the store and its entry from the cache; a's
        # entry stays, a2 (previous) uses it
        client.load_model(bundles["c"])
        (entry_c,) = _entries(cache) - {entry_a, entry_b}
        assert _entries(cache) == {entry_a, entry_c}
        assert _index(cache) == {entry_a: {ids["a2"]}, entry_c: {ids["c"]}}
        client.load_model(bundles["b"])  # current b, previous c: a2 and with it a's entry go
        assert _entries(cache) == {entry_b, entry_c}
    # A restart imports current's entry: the pruning left the entries the store still serves from.
    with runtime_thread(_settings(store, ipc_endpoints)) as restarted:
        assert restarted.serving is not None and restarted.serving.adapter.load["from"] == "cache"
        assert restarted.serving.bundle.id == ids["b"]
    assert _entries(cache) == {entry_b, entry_c}


def test_a_start_prunes_what_a_roll_back_elsewhere_left(
        tmp_path: Path, bundles: dict[str, Path], ipc_endpoints: dict[str, str]) -> None:
    """The supervisor rolls the store back with no cache in hand; the next start prunes the entries."""
    from runtime.store import BundleStore

    store = tmp_path / "store"
    cache = store / "cache"
    with runtime_thread(_settings(store, ipc_endpoints), bundles["a"]):
        (entry_a,) = _entries(cache)
        ControlClient(ipc_endpoints["control"]).load_model(bundles["b"])
    BundleStore(store).roll_back()  # as the supervisor does: current a, no previous; b's entry stays
    assert len(_entries(cache)) == 2
    with runtime_thread(_settings(store, ipc_endpoints)) as restarted:
        assert restarted.serving is not None and restarted.serving.adapter.load["from"] == "cache"
    assert _entries(cache) == {entry_a}


def test_a_cache_folder_without_the_index_is_not_emptied(
        tmp_path: Path, bundles: dict[str, Path], ipc_endpoints: dict[str, str]) -> None:
    """Files the index does not name are not the runtime's: another program's, or entries written
    before the index existed. A prune leaves them, with or without an index beside them."""
    store = tmp_path / "store"
    cache = store / "cache"
    cache.mkdir(parents=True)
    (cache / "1234.blob").write_bytes(b"someone else's")
    (cache / "notes.txt").write_text("kept")
    with runtime_thread(_settings(store, ipc_endpoints), bundles["a"]):
        client = ControlClient(ipc_endpoints["control"])
        client.load_model(bundles["b"])
        client.load_model(bundles["c"])  # a pruned, with its entry
    assert (cache / "1234.blob").read_bytes() == b"someone else's" and (cache / "notes.txt").read_text() == "kept"
    assert _entries(cache) == {"1234.blob"} | set(_index(cache))
    assert len(_index(cache)) == 2
    # The index removed (a folder that is not ours): a store's prune removes nothing at all.
    (cache / INDEX_NAME).unlink()
    before = _entries(cache)
    with runtime_thread(_settings(store, ipc_endpoints), bundles["a"]):
        pass  # installs a: c becomes previous, b is pruned from the store, its entry unknown: kept
    assert before <= _entries(cache)
