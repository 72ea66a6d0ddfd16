"""A store on a full disk (review 16b): ``serve --model`` must serve the model unpersisted, as it
does on a read-only store (event ``model_not_persisted``), not exit with "No space left on device".

``BundleStore.writable`` probed with an empty file, which a full disk still makes (a directory
entry needs no data block), so the runtime took the full store for writable, tried to install the
model and died. The store is a real tmpfs of 64 KiB, filled up (root only: skipped elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import config
from runtime.bundle import read_bundle
from runtime.server import Runtime, Settings
from runtime.store import BundleStore
from runtime.supervisor import Supervisor


@contextlib.contextmanager
def _full_store(free_pages: int = 0, model: Path | None = None) -> Iterator[Path]:
    """A store folder on a tmpfs with ``free_pages`` of 4 KiB left (the bundle needs more than one),
    ``model`` installed in it as ``current`` before it filled up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="full-", dir="/tmp"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        shutil.rmtree(mount, ignore_errors=True)
        pytest.skip("not allowed to mount a tmpfs here")
    try:
        store = BundleStore(mount / "store")
        if model is not None:
            store.install(read_bundle(model))
        with open(mount / "fill", "wb", buffering=0) as fill:  # every block taken
            with contextlib.suppress(OSError):
                while True:
                    fill.write(b"\0" * 4096)
            fill.truncate(max(0, fill.seek(0, os.SEEK_END) - free_pages * 4096))
        if not free_pages:
            with pytest.raises(OSError):
                (mount / "probe").write_bytes(b"\0" * 4096)
        yield mount / "store"
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        shutil.rmtree(mount, ignore_errors=True)


def _endpoints() -> dict[str, str]:
    short = Path(tempfile.mkdtemp(prefix="fs-", dir="/tmp"))
    return {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}


def test_a_full_store_is_not_writable() -> None:
    with _full_store() as store:
        assert BundleStore(store).writable is False


@pytest.mark.parametrize("free_pages", [0, 1], ids=["full", "too-full-for-the-bundle"])
def test_a_runtime_given_a_model_on_a_full_store_serves_it_unpersisted(brightness_bundle: Path,
                                                                       free_pages: int) -> None:
    """Full: the probe says no. One page left: the probe passes and the install fails (ENOSPC) at
    start-up, which must serve the model unpersisted too."""
    with _full_store(free_pages) as store:
        runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", store=str(store), **_endpoints()),
                          model=brightness_bundle)
        try:
            assert runtime.serving is not None and runtime.serving.bundle.name == "brightness"
            events = [e["event"] for e in runtime.telemetry.pending_events()]
            assert "model_not_persisted" in events
            assert not os.path.lexists(store / "current")
            assert list((store / "bundles").iterdir()) == []
            assert not list(store.glob(".incoming-*"))
        finally:
            runtime.close()


def test_a_supervisor_restart_on_a_full_store_keeps_the_model_the_first_start_served(
        brightness_bundle: Path, tmp_path: Path) -> None:
    """The first runtime served ``--model`` unpersisted (the store full): a restart must serve it
    again, as on a read-only store, not the store's older ``current``; os.access called a full store
    writable, and the restart dropped ``--model``."""
    with _full_store(model=brightness_bundle) as store:
        sup = Supervisor(["--device", "CPU", "--model", str(tmp_path / "new"), "--store", str(store)],
                         starve_s=30.0, backoff_s=0.05, max_backoff_s=0.2)
        assert sup.command(restart=True) == sup.cmd
