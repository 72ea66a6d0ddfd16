"""OpenVINO's model cache for compiles on board (runtime/model_cache.py): a second open of the same
bundle imports the cache entry the first wrote, says so, and computes the same; a cache that cannot be
written is a warning and a compile without it, never a payload that does not start."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest

from runtime import config
from runtime.bundle import read_bundle
from runtime.device import OpenVINOAdapter
from runtime.model_cache import cache_folder
from runtime.server import Settings
from tests.conftest import make_read_only, runtime_thread


def _open(bundle: Path, device: str, cache_dir: str) -> OpenVINOAdapter:
    return OpenVINOAdapter(read_bundle(bundle), device, lambda *_: None, infer_requests=1, cache_dir=cache_dir)


def _entries(folder: Path) -> list[str]:
    """OpenVINO's cache entries: ``<hash>.blob`` (CPU and MYRIAD), ``.cl_cache`` (GPU)."""
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".blob", ".cl_cache"))


@pytest.mark.parametrize("device", ["CPU", "myriadx-emu"])
def test_a_second_open_takes_the_model_from_the_cache_and_computes_the_same(
        tmp_path: Path, brightness_bundle: Path, device: str) -> None:
    """The twin too: its rewrite is deterministic and the cache key hashes the rewritten graph."""
    cache = tmp_path / "cache"
    batch = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    first = _open(brightness_bundle, device, str(cache))
    try:
        assert first.load["how"] == "compiled" and first.load["from"] == "compile", first.load
        assert "written to the model cache" in first.load["detail"], first.load
        entries = _entries(cache)
        assert entries, list(cache.iterdir())
        expected = first.infer(batch)
    finally:
        first.close()
    second = _open(brightness_bundle, device, str(cache))
    try:
        assert second.load["how"] == "compiled" and second.load["from"] == "cache", second.load
        assert f"from the model cache {cache}" in second.load["detail"], second.load
        assert _entries(cache) == entries  # imported, nothing new written
        np.testing.assert_array_equal(second.infer(batch), expected)
    finally:
        second.close()


def test_no_cache_dir_compiles_afresh_and_writes_nothing(tmp_path: Path, brightness_bundle: Path) -> None:
    adapter = _open(brightness_bundle, "CPU", "")
    try:
        assert adapter.load["from"] == "compile" and "no model cache" in adapter.load["detail"], adapter.load
    finally:
        adapter.close()
    assert cache_folder("", tmp_path) == ""
    assert cache_folder("{store}/cache", tmp_path) == f"{tmp_path}/cache"


def test_a_cache_that_cannot_be_written_is_a_warning_not_a_failure(
        tmp_path: Path, brightness_bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    undo = make_read_only(cache)
    try:
        with caplog.at_level(logging.WARNING, logger="runtime.model_cache"):
            adapter = _open(brightness_bundle, "CPU", str(cache))
        try:
            assert adapter.load["from"] == "compile", adapter.load
            assert "model cache not used" in adapter.load["detail"] and str(cache) in adapter.load["detail"]
            assert adapter.infer(np.zeros((1, 3, 64, 64), np.float32)).shape[0] == 1
        finally:
            adapter.close()
        assert any("model cache" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
        assert _entries(cache) == []
    finally:
        for cmd in undo:
            subprocess.run(cmd, check=False)


def test_a_restarted_runtime_serves_its_stored_model_from_the_cache(
        tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> None:
    """The default ``[inference] cache_dir`` is ``{store}/cache``: the start that installs the model
    compiles it and writes the entry, the restart imports it, and says so in its load."""
    store = tmp_path / "store"
    settings = Settings.from_config(config.defaults(), device="CPU", store=str(store), **ipc_endpoints)
    assert settings.cache_dir == "{store}/cache"
    with runtime_thread(settings, brightness_bundle) as runtime:
        assert runtime.serving is not None and runtime.serving.adapter.load["from"] == "compile"
    assert _entries(store / "cache")
    with runtime_thread(settings) as restarted:
        assert restarted.serving is not None
        load = restarted.serving.adapter.load
        assert load["from"] == "cache" and f"{store.resolve()}/cache" in load["detail"], load


def test_cache_dir_must_be_a_string() -> None:
    with pytest.raises(ValueError, match=r"\[inference\] cache_dir must be a string"):
        Settings.from_config(config.defaults(), cache_dir=1)


def test_a_damaged_cache_entry_is_compiled_over(tmp_path: Path, brightness_bundle: Path) -> None:
    """A truncated entry (a power cut while OpenVINO wrote it) costs a compile, not the start."""
    cache = tmp_path / "cache"
    _open(brightness_bundle, "CPU", str(cache)).close()
    (entry,) = [cache / name for name in _entries(cache)]
    entry.chmod(0o644)
    entry.write_bytes(entry.read_bytes()[:500])
    adapter = _open(brightness_bundle, "CPU", str(cache))
    try:
        assert adapter.load["from"] == "compile", adapter.load
        assert adapter.infer(np.zeros((1, 3, 64, 64), np.float32)).shape[0] == 1
    finally:
        adapter.close()
    assert entry.stat().st_size > 500  # written again whole
