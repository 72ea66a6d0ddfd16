"""Review 21: OpenVINO's model cache on the 2022.3 API (the MYRIAD toolkit), which was untested.

The 2022.3 CPU plugin imports and exports (``CACHE_DIR`` set Core-wide: runtime/ov_api.py), but its
compiled model does not report ``LOADED_FROM_CACHE``, so the runtime judges by the files the compile
wrote. It used to count only new files, and a damaged entry, which OpenVINO compiles over under the
same name, was said to come "from the model cache". Also checked here: the index that lets the store
prune the entries of bundles it no longer holds is written from those files on this API too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime import ov_api

pytestmark = pytest.mark.skipif(ov_api.API != "openvino.runtime", reason="needs the OpenVINO 2022.3 API")

MODELS = Path(__file__).resolve().parents[2] / "models"


def _open(model: Path, cache: Path, device: str = "CPU"):  # -> InferenceAdapter
    from runtime.bundle import read_bundle
    from runtime.device import open_device

    return open_device(read_bundle(model), device, lambda *_: None, infer_requests=1, cache_dir=str(cache))


def _entries(cache: Path) -> dict[str, tuple[int, int]]:
    """OpenVINO's entries with their size and mtime: an import writes neither."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in cache.iterdir() if p.suffix == ".blob"}


@pytest.mark.parametrize("device", ["CPU", "myriadx-emu"])
def test_a_second_open_on_2022_comes_from_the_cache(tmp_path: Path, device: str) -> None:
    cache = tmp_path / "cache"
    batch = np.random.default_rng(0).standard_normal((1, 3, 256, 256)).astype(np.float32)
    first = _open(MODELS / "default", cache, device)
    try:
        assert first.load["from"] == "compile" and "written to the model cache" in first.load["detail"], first.load
        assert first.numerics["openvino"].startswith("2022.3")
        expected = first.infer(batch)
    finally:
        first.close()
    written = _entries(cache)
    assert len(written) == 1, written
    second = _open(MODELS / "default", cache, device)
    try:
        assert second.load["from"] == "cache" and f"from the model cache {cache}" in second.load["detail"], second.load
        np.testing.assert_array_equal(second.infer(batch), expected)
    finally:
        second.close()
    assert _entries(cache) == written  # imported: the entry was not written again


def test_a_damaged_entry_compiled_over_on_2022_is_not_said_to_come_from_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _open(MODELS / "default", cache).close()
    (entry,) = [cache / name for name in _entries(cache)]
    entry.write_bytes(entry.read_bytes()[:1000])  # a power cut while OpenVINO wrote it
    adapter = _open(MODELS / "default", cache)
    try:
        assert adapter.load["from"] == "compile" and "compiled afresh" in adapter.load["detail"], adapter.load
    finally:
        adapter.close()
    assert entry.stat().st_size > 1000  # OpenVINO wrote it again whole, under the same name
    again = _open(MODELS / "default", cache)
    try:
        assert again.load["from"] == "cache", again.load
    finally:
        again.close()


def test_the_store_prunes_the_entries_of_its_pruned_bundles_on_2022(tmp_path: Path) -> None:
    """Each model opened through the cache and installed, as an uplink does: after three, the first
    bundle is pruned from the store and its entry from the cache; current's and previous's stay."""
    from runtime.bundle import read_bundle
    from runtime.store import BundleStore

    cache = tmp_path / "store" / "cache"
    store = BundleStore(tmp_path / "store", cache_dir=str(cache))
    seen: list[set[str]] = []
    for name in ("default", "optical", "sar"):
        before = set(_entries(cache)) if cache.exists() else set()
        adapter = _open(MODELS / name, cache)
        adapter.close()
        seen.append(set(_entries(cache)) - before)
        store.install(read_bundle(MODELS / name))
    assert all(len(new) == 1 for new in seen), seen
    assert set(_entries(cache)) == seen[1] | seen[2]
