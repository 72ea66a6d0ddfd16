"""The store after a crash and at start-up (reviewer's findings): a bundle folder half removed by a
crash in the middle of a prune is never linked again as it is, a store opened after such a crash
removes it, a runtime whose ``current`` model cannot serve falls back to ``previous`` and says so,
and a ``--store`` that is a file is a clear error.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from runtime import config
from runtime.bundle import Bundle, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.interface import EVENTS
from runtime.server import Runtime, Settings
from runtime.store import BundleStore


def _variant(base: Path, out: Path, name: str) -> Bundle:
    """The model of ``base`` under another name: another bundle id, the same IR."""
    bundle = read_bundle(base)
    manifest = rewritable_manifest(bundle)
    manifest["name"] = name
    return rewrite_bundle(bundle, out / name, manifest)


def _endpoints() -> dict[str, str]:
    short = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))  # ipc paths are limited to ~100 characters
    return {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}


def test_a_half_removed_bundle_installed_again_is_rewritten_whole(tmp_path: Path, brightness_bundle: Path) -> None:
    """install() of a model whose folder a crash left incomplete used to link ``current`` to it."""
    a, b = _variant(brightness_bundle, tmp_path, "A"), _variant(brightness_bundle, tmp_path, "B")
    store = BundleStore(tmp_path / "store")
    store.install(a)
    store.install(b)  # current B, previous A
    (tmp_path / "store" / "bundles" / a.id / "model.bin").unlink()  # as a prune cut short would leave it
    store.install(a)  # the ground rolls back to A: the folder exists, but is not A any more
    assert os.readlink(tmp_path / "store" / "current") == f"bundles/{a.id}"
    assert read_bundle(store.current_path()).id == a.id  # type: ignore[arg-type]
    assert not list((tmp_path / "store").glob(".incoming-*"))  # nothing left of the rewrite


def test_opening_a_store_removes_bundle_folders_no_link_points_to(tmp_path: Path, brightness_bundle: Path) -> None:
    a, b, c = (_variant(brightness_bundle, tmp_path, n) for n in "ABC")
    store = BundleStore(tmp_path / "store")
    for bundle in (a, b, c):
        store.install(bundle)
    # A crash in the middle of C's prune of A: part of A is left, linked by neither current nor previous.
    orphan = tmp_path / "store" / "bundles" / a.id
    orphan.mkdir()
    (orphan / "manifest.json").write_bytes(a.manifest_bytes)
    BundleStore(tmp_path / "store")
    assert sorted(p.name for p in (tmp_path / "store" / "bundles").iterdir()) == sorted([b.id, c.id])


def test_a_store_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a store")
    with pytest.raises(ValueError, match="--store .*a-file: not a directory"):
        BundleStore(tmp_path / "a-file")


def _broken_current(tmp_path: Path, brightness_bundle: Path) -> tuple[Path, Bundle, Bundle]:
    """A store whose current (B) lost its model.bin and whose previous (A) is whole."""
    a, b = _variant(brightness_bundle, tmp_path, "A"), _variant(brightness_bundle, tmp_path, "B")
    root = tmp_path / "store"
    store = BundleStore(root)
    store.install(a)
    store.install(b)
    (root / "bundles" / b.id / "model.bin").unlink()
    return root, a, b


def test_a_runtime_whose_current_model_cannot_be_read_serves_the_previous_one(
        tmp_path: Path, brightness_bundle: Path) -> None:
    """It used to exit (rc 2, "missing model.bin"), although the store kept the model before."""
    root, a, b = _broken_current(tmp_path, brightness_bundle)
    runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", store=str(root), **_endpoints()))
    try:
        assert runtime.serving is not None and runtime.serving.bundle.id == a.id
        events = runtime.telemetry.pending_events()
        rolled = [e for e in events if e["event"] == "model_rolled_back"]
        assert len(rolled) == 1 and rolled[0]["severity"] == EVENTS["model_rolled_back"] == "WARNING_HI"
        assert "missing model.bin" in rolled[0]["detail"] and rolled[0]["model"]["name"] == "A"
        assert rolled[0]["store_rolled_back"] is True
        # The store now says what serves: a later install keeps A as previous, not the broken B.
        assert os.readlink(root / "current") == f"bundles/{a.id}" and not os.path.lexists(root / "previous")
        assert not (root / "bundles" / b.id).exists()
    finally:
        runtime.close()


def test_a_runtime_whose_current_model_fails_acceptance_serves_the_previous_one(
        tmp_path: Path, brightness_bundle: Path) -> None:
    """A current bundle that reads back but cannot serve here (its manifest describes another input
    than its IR's) is refused by the acceptance test at start-up; previous serves."""
    a = _variant(brightness_bundle, tmp_path, "A")
    good = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(good)
    manifest["name"] = "wrong-shape"
    manifest["input"]["shape"] = [1, 3, 32, 32]
    manifest["output"]["shape"] = [1, 1, 32, 32]
    wrong = rewrite_bundle(good, tmp_path / "wrong", manifest)
    root = tmp_path / "store"
    store = BundleStore(root)
    store.install(a)
    store.install(wrong)  # installed directly: an uplink would have refused it
    runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", store=str(root), **_endpoints()))
    try:
        assert runtime.serving is not None and runtime.serving.bundle.id == a.id
        rolled = [e for e in runtime.telemetry.pending_events() if e["event"] == "model_rolled_back"]
        assert len(rolled) == 1 and "does not match the IR" in rolled[0]["detail"]
    finally:
        runtime.close()


def test_a_runtime_whose_current_and_previous_both_fail_says_why_for_each(
        tmp_path: Path, brightness_bundle: Path) -> None:
    root, a, b = _broken_current(tmp_path, brightness_bundle)
    (root / "bundles" / a.id / "model.xml").unlink()
    with pytest.raises(ValueError, match="current model cannot serve .*missing model.bin.*nor its previous one .*"
                                         "missing model.xml"):
        Runtime(Settings.from_config(config.defaults(), device="CPU", store=str(root), **_endpoints()))
