"""The store's check of its ``current``/``previous`` links (runtime/store.py, ``_check_links``) against a
store whose ``bundles/`` folder is itself a link (the bundles kept on a larger partition): its links
point into ``bundles/`` as the store made them, yet the check compared their fully resolved target
with the unresolved ``bundles/`` path and refused the store, so a runtime on it, which served its
``current`` until 2026-12-05, no longer started (an install into such a store fails, as it did before)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from runtime.bundle import Bundle, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.store import BundleStore
from tests.conftest import make_read_only


def _variant(base: Path, out: Path, name: str) -> Bundle:
    bundle = read_bundle(base)
    manifest = rewritable_manifest(bundle)
    manifest["name"] = name
    return rewrite_bundle(bundle, out / name, manifest)


def test_a_store_whose_bundles_folder_is_a_link_opens_and_serves_its_current(tmp_path: Path,
                                                                             brightness_bundle: Path) -> None:
    a, b = _variant(brightness_bundle, tmp_path, "A"), _variant(brightness_bundle, tmp_path, "B")
    root = tmp_path / "store"
    store = BundleStore(root)
    store.install(a)
    store.install(b)
    elsewhere = tmp_path / "big-partition" / "bundles"
    elsewhere.parent.mkdir()
    shutil.move(str(root / "bundles"), elsewhere)
    os.symlink(elsewhere, root / "bundles")
    again = BundleStore(root)  # raised ValueError: "current is a link to bundles/..., not to a bundle folder"
    assert again.current_path() is not None and read_bundle(again.current_path()).id == b.id
    assert read_bundle(again.previous_path()).id == a.id
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted([a.id, b.id])  # nothing pruned


def test_a_link_out_of_the_store_is_still_refused(tmp_path: Path, brightness_bundle: Path) -> None:
    root = tmp_path / "store"
    BundleStore(root)
    outside = tmp_path / "outside"
    shutil.copytree(brightness_bundle, outside)
    os.symlink(outside, root / "current")
    with pytest.raises(ValueError, match="not to a bundle folder"):
        BundleStore(root)


def test_a_read_only_store_with_a_hand_made_current_still_serves_it(brightness_bundle: Path) -> None:
    """The refusal of a hand-made ``current`` (a bundle folder copied there) is for a store that installs
    and prunes: on a read-only store nothing is installed or pruned, the advice to move the folder out
    cannot be followed, and the store served that folder until 2026-12-05; refused, the payload did
    not start at all. A real read-only mount (tests.conftest.make_read_only)."""
    short = Path(tempfile.mkdtemp(prefix="ro-", dir="/tmp"))
    store = short / "store"
    BundleStore(store)
    shutil.copytree(brightness_bundle, store / "current")  # by hand, not installed
    undo = make_read_only(store)
    try:
        opened = BundleStore(store)  # raised ValueError ("a folder, not the link ... the store makes")
        assert not opened.writable
        assert opened.current_path() == store / "current"
        assert read_bundle(opened.current_path()).manifest["name"] == "brightness"
    finally:
        for cmd in undo:
            subprocess.run(cmd, capture_output=True)
        if not undo:
            os.chmod(store, 0o755)
        shutil.rmtree(short, ignore_errors=True)
