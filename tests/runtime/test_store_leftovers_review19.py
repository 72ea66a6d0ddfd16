"""What the bundle store (runtime/store.py) cleans when it is opened, and what it refuses.

Stray files in ``bundles/`` (a copy cut short, a probe a power cut left) were never removed: the prune
removed folders only (``rmtree`` skipped files silently). A ``current`` folder made by hand where the
store keeps its link broke the next install with a bare "Is a directory", after ``previous`` had been
pointed at the hand-made folder. Real stores on disk, real bundles, and a real runtime for the error.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from runtime import config
from runtime.bundle import Bundle, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.server import Runtime, Settings
from runtime.store import BundleStore


def _variant(base: Path, out: Path, name: str) -> Bundle:
    """The model of ``base`` under another name: another bundle id, the same IR."""
    bundle = read_bundle(base)
    manifest = rewritable_manifest(bundle)
    manifest["name"] = name
    return rewrite_bundle(bundle, out / name, manifest)


def test_opening_a_store_removes_stray_files_it_owns_and_nothing_else(tmp_path: Path, brightness_bundle: Path) -> None:
    a, b = _variant(brightness_bundle, tmp_path, "A"), _variant(brightness_bundle, tmp_path, "B")
    root = tmp_path / "store"
    store = BundleStore(root)
    store.install(a)
    store.install(b)
    bundles = root / "bundles"
    (bundles / f"{a.id}.part").write_bytes(b"half a copied bundle")  # a copy cut short
    (bundles / ".probe-x1y2z3").write_bytes(b"\0" * 4096)  # can_write's probe, a power cut before its unlink
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the store's")
    (bundles / "a-link").symlink_to(outside)  # removed as a link; what it points to stays
    (root / ".current.tmp").symlink_to(f"bundles/{a.id}")  # a swap cut short
    (root / "notes.txt").write_text("the operator's")  # in the root, not the store's: left alone
    BundleStore(root)
    assert sorted(p.name for p in bundles.iterdir()) == sorted([a.id, b.id])
    assert not os.path.lexists(root / ".current.tmp")
    assert (root / "notes.txt").exists() and (outside / "keep.txt").exists()
    assert read_bundle(root / "current").id == b.id and read_bundle(root / "previous").id == a.id


@pytest.mark.parametrize("name", ["current", "previous"])
def test_a_current_or_previous_folder_made_by_hand_is_a_clear_error(
        tmp_path: Path, brightness_bundle: Path, name: str) -> None:
    """It used to open, then every install failed with "[Errno 21] Is a directory" (and a prune kept
    the hand-made folder while removing the installed bundles). Now the open refuses it, naming the
    path and what to do, and removes nothing."""
    a = _variant(brightness_bundle, tmp_path, "A")
    root = tmp_path / "store"
    BundleStore(root).install(a)
    if name == "current":
        (root / "current").unlink()
    shutil.copytree(brightness_bundle, root / name)  # a bundle copied in by hand
    with pytest.raises(ValueError, match=rf"{root / name} is a folder, not the link .*move it out of the store"):
        BundleStore(root)
    assert (root / "bundles" / a.id).is_dir() and (root / name / "manifest.json").is_file()


def test_a_current_link_made_by_hand_to_a_bundle_elsewhere_is_a_clear_error(
        tmp_path: Path, brightness_bundle: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "current").symlink_to(brightness_bundle)
    with pytest.raises(ValueError, match=rf"{root / 'current'} is a link to {brightness_bundle}, not to a bundle"):
        BundleStore(root)


def test_a_runtime_on_a_store_with_a_hand_made_current_says_why_before_binding_anything(
        tmp_path: Path, brightness_bundle: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    shutil.copytree(brightness_bundle, root / "current")
    short = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    settings = Settings.from_config(config.defaults(), device="CPU", store=str(root), **endpoints)
    with pytest.raises(ValueError, match="is a folder, not the link"):
        Runtime(settings, model=brightness_bundle)
    assert not list(short.iterdir())  # no socket was bound
