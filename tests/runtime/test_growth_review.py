"""State that grew without bound over a long run, found by an adversarial review (each test failed
before its fix).

1. An uplink refused because its install failed (a full disk: ENOSPC) left its half-written staging
   folder (``.incoming-*``, the model's IR and more) in the store for every try, removed only at the
   next start: on a disk that is full the ground retries, each retry leaving more, so the disk never
   empties and no uplink can ever succeed again until a restart.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from runtime import bundle as bundle_module
from runtime import config
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle
from runtime.client import ControlClient, ControlError
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground, _tile
from flightsim.streamer import Streamer


def _staging(store: Path) -> list[Path]:
    return sorted(p for p in store.iterdir() if p.name.startswith(".incoming"))


def test_uplinks_refused_for_a_full_disk_leave_nothing_in_the_store(
        tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Five uplinks refused because the store's disk is full (the manifest cannot be written) leave
    no staging folder behind (before the fix: one per uplink, with the model's IR in it), the old
    model serves throughout, and once the disk has room the same uplink is installed."""
    store = tmp_path / "store"
    settings = Settings.from_config(config.defaults(), device="CPU", store=str(store), **ipc_endpoints)
    new = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(new)
    manifest["name"] = "next"
    new_path = tmp_path / "next"
    rewrite_bundle(new, new_path, manifest)
    real = bundle_module.write_atomic

    def full_disk(path: Any, data: bytes) -> None:
        if Path(path).name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    with runtime_thread(settings, brightness_bundle) as runtime:
        control = ControlClient(runtime.endpoints["control"])
        monkeypatch.setattr(bundle_module, "write_atomic", full_disk)
        for attempt in range(5):
            with pytest.raises(ControlError, match="No space left"):
                control.load_model(new_path)
            assert _staging(store) == [], f"after {attempt + 1} refused uplinks: {_staging(store)}"
        assert runtime.serving is not None and runtime.serving.bundle.name == "brightness"
        ground, streamer = Ground(runtime.endpoints), Streamer(runtime.endpoints["tiles"])
        streamer.stream([_tile(0)])
        [result] = ground.results(1)
        assert result["status"] == "ok"
        streamer.close()
        monkeypatch.setattr(bundle_module, "write_atomic", real)  # room again
        assert control.load_model(new_path)["model"]["name"] == "next"
        assert _staging(store) == []
