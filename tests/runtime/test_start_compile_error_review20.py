"""A store whose ``current`` bundle the device's plugin will not compile, found at a start.

Found by a review of 2026-12-06: the start served ``previous`` but kept the refused ``current`` (a
RuntimeError from the plugin was taken for a busy device), so every start compiled it again and the
next uplink made it ``previous``, pruning the good model. Now, once ``previous`` has opened on the
configured device (so the device works), ``current`` is tried there once more, and a second refusal
rolls the store back as a refused uplink is. Real OpenVINO CPU compiles throughout: an IR whose input
has a dynamic rank, which OpenVINO reads and the CPU plugin refuses to compile.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import openvino as ov
import pytest

from runtime import config, ov_api
from runtime.bundle import Bundle, BundleError, read_bundle, rewritable_manifest, write_bundle
from runtime.server import Runtime, Settings
from runtime.store import BundleStore


def _settings(store: Path) -> Settings:
    short = Path(tempfile.mkdtemp(prefix="sc-", dir="/tmp"))  # ipc paths are limited to ~100 characters
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    return Settings.from_config(config.defaults(), device="CPU", store=str(store), **endpoints)


def _uncompilable(tmp_path: Path, like: Path) -> Bundle:
    """``like``'s manifest over an IR of dynamic rank: it reads back whole, the CPU plugin refuses to compile it."""
    op = ov_api.opset(13)
    image = op.parameter(ov.PartialShape.dynamic(), ov_api.Type.f32)
    ov_api.save_ir(ov_api.Model([op.sigmoid(image)], [image]), tmp_path / "ir" / "model.xml")
    manifest = rewritable_manifest(read_bundle(like))
    manifest["name"] = "uncompilable"
    return write_bundle(tmp_path / "uncompilable", (tmp_path / "ir" / "model.xml").read_bytes(),
                        (tmp_path / "ir" / "model.bin").read_bytes(), manifest)


def test_a_current_the_plugin_will_not_compile_is_rolled_back_to_previous(tmp_path: Path,
                                                                         brightness_bundle: Path) -> None:
    good, bad = read_bundle(brightness_bundle), _uncompilable(tmp_path, brightness_bundle)
    root = tmp_path / "store"
    store = BundleStore(root)
    store.install(good)
    store.install(bad)  # installed directly: an uplink would have refused it
    runtime = Runtime(_settings(root))
    try:
        assert runtime.serving is not None and runtime.serving.bundle.id == good.id
        events = list(runtime.telemetry.pending_events())
        rolled = [e for e in events if e["event"] == "model_rolled_back"]
        assert len(rolled) == 1 and rolled[0]["store_rolled_back"] is True, rolled
        assert rolled[0]["detail"].startswith("current model refused") and "dynamic rank" in rolled[0]["detail"]
        assert "again after the previous model opened on CPU" in rolled[0]["detail"]
        assert [e["model"]["sha256"] for e in events if e["event"] == "model_loaded"] == [good.id]
    finally:
        runtime.close()
    # The store itself is rolled back: the refused model is gone, and the next start serves the good one.
    assert (root / "current").resolve().name == good.id and not (root / "previous").exists()
    assert not (root / "bundles" / bad.id).exists()
    runtime = Runtime(_settings(root))
    try:
        assert runtime.serving is not None and runtime.serving.bundle.id == good.id
        assert not [e for e in runtime.telemetry.pending_events() if e["event"] == "model_rolled_back"]
    finally:
        runtime.close()


def test_a_current_the_plugin_will_not_compile_and_no_previous_fails_the_start_clearly(
        tmp_path: Path, brightness_bundle: Path) -> None:
    root = tmp_path / "store"
    BundleStore(root).install(_uncompilable(tmp_path, brightness_bundle))
    with pytest.raises(BundleError, match="current model cannot serve .*dynamic rank.*and there is no previous one"):
        Runtime(_settings(root))
    assert (root / "current").exists()  # nothing to roll back to: the store is left as it was
