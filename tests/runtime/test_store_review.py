"""The store and the supervisor, found by a review of 2026-12-04 (each test failed before): a store
given as a relative path, or under a symlink, refused every uplink after the first; a restart whose
device failed to open once rolled the store back and deleted the uplinked model for good; a
read-only store served its previous model at every start; the supervisor misread abbreviated
serve options that serve itself accepted; and secret key files were readable by others.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

import runtime.server as server_module
from runtime import config
from runtime.bundle import Bundle, read_bundle, rewritable_manifest, rewrite_bundle
from runtime.server import Runtime, Settings
from runtime.store import BundleStore
from runtime.supervisor import Supervisor

REPO = Path(__file__).resolve().parents[2]


def _variant(base: Path, out: Path, name: str) -> Bundle:
    bundle = read_bundle(base)
    manifest = rewritable_manifest(bundle)
    manifest["name"] = name
    return rewrite_bundle(bundle, out / name, manifest)


def _settings(store: Path) -> Settings:
    short = Path(tempfile.mkdtemp(prefix="sr-", dir="/tmp"))  # ipc paths are limited to ~100 characters
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    return Settings.from_config(config.defaults(), device="CPU", store=str(store), **endpoints)


def test_a_store_given_relative_or_through_a_symlink_takes_every_install(
        tmp_path: Path, brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = (_variant(brightness_bundle, tmp_path, n) for n in "ABC")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    for root in (Path("relstore"), tmp_path / "link" / "store"):
        store = BundleStore(root)
        for bundle in (a, b, c):
            store.install(bundle)
        assert read_bundle(store.current_path()).name == "C"  # type: ignore[arg-type]
        assert read_bundle(store.previous_path()).name == "B"  # type: ignore[arg-type]


def test_a_device_that_fails_to_open_once_at_a_restart_does_not_cost_the_current_model(
        tmp_path: Path, brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor restarts a runtime whose device may still be held by the one it killed: the
    uplinked current model stays in the store. Since 2026-12-06 (tests/runtime/
    test_start_compile_error_review20.py) it is tried again once the previous model has opened on the
    device, and serves at once (it served only from the next start)."""
    old, uplinked = _variant(brightness_bundle, tmp_path, "old"), _variant(brightness_bundle, tmp_path, "uplinked")
    root = tmp_path / "store"
    store = BundleStore(root)
    store.install(old)
    store.install(uplinked)
    opens = server_module.open_device
    calls: list[str] = []

    def busy_once(bundle: Bundle, *args: Any, **kwargs: Any) -> Any:
        calls.append(bundle.name)
        if len(calls) == 1:
            raise RuntimeError("[ NC_ERROR ] device busy: still held by the runtime just killed")
        return opens(bundle, *args, **kwargs)

    monkeypatch.setattr(server_module, "open_device", busy_once)
    runtime = Runtime(_settings(root))
    try:
        assert calls == ["uplinked", "old", "uplinked"]  # tried again once the device had opened "old"
        assert runtime.serving is not None and runtime.serving.bundle.name == "uplinked"
        assert not [e for e in runtime.telemetry.pending_events() if e["event"] == "model_rolled_back"]
    finally:
        runtime.close()
    assert (root / "bundles" / uplinked.id).is_dir()
    runtime = Runtime(_settings(root))  # the device free again
    try:
        assert runtime.serving is not None and runtime.serving.bundle.name == "uplinked"
    finally:
        runtime.close()


def test_the_stores_current_model_is_served_without_installing_it_again(
        tmp_path: Path, brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only store (a read-only mount, a full disk) cannot rewrite its links: a start that
    installed its current model again found that "refused" and served the previous one."""
    old, new = _variant(brightness_bundle, tmp_path, "old"), _variant(brightness_bundle, tmp_path, "new")
    root = tmp_path / "store"
    store = BundleStore(root)
    store.install(old)
    store.install(new)

    def read_only(self: BundleStore, bundle: Bundle) -> Path:
        raise OSError(30, "Read-only file system", str(self.root / ".current.tmp"))

    monkeypatch.setattr(BundleStore, "install", read_only)
    runtime = Runtime(_settings(root))
    try:
        assert runtime.serving is not None and runtime.serving.bundle.name == "new"
        assert not [e for e in runtime.telemetry.pending_events() if e["event"] == "model_rolled_back"]
    finally:
        runtime.close()


@pytest.mark.parametrize("abbreviated, full", [("--mod", "--model"), ("--stor", "--store"), ("--conf", "--config")])
def test_the_supervisor_and_serve_refuse_abbreviated_options(abbreviated: str, full: str) -> None:
    with pytest.raises(ValueError, match=rf"{abbreviated}: write {full} in full"):
        Supervisor([abbreviated, "/somewhere"], starve_s=5.0, backoff_s=0.1, max_backoff_s=1.0)
    proc = subprocess.run([sys.executable, "-m", "runtime", "serve", abbreviated, "/somewhere"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr, proc.stderr[-500:]


def test_secret_key_files_are_never_readable_by_others_and_never_written_through_a_link(tmp_path: Path) -> None:
    """CURVE secret keys were left 0644 under the usual umask (pyzmq writes them with open()), the
    signing key was 0644 until its chmod, and a dangling symlink at a key's name, or a deployed
    authorized/NAME.key, was written over (found by a security review of 2026-12-04)."""
    import stat

    from runtime.security import make_keys
    from runtime.signing import make_signing_keys

    mask = os.umask(0o022)
    try:
        made = make_keys(tmp_path / "k", ["ground"])
        private, public = make_signing_keys(tmp_path / "k")
    finally:
        os.umask(mask)
    for secret in (*made.values(), private):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "k" / "authorized" / "ground.key").stat().st_mode) == 0o644
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "uplink.signing.pem").symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(ValueError, match="key files exist already"):
        make_signing_keys(tmp_path / "s")
    assert not (tmp_path / "elsewhere.pem").exists()
    (tmp_path / "a" / "authorized").mkdir(parents=True)
    (tmp_path / "a" / "authorized" / "ground.key").write_text("deployed")
    with pytest.raises(ValueError, match="authorized/ground.key"):
        make_keys(tmp_path / "a", ["ground"])
    assert (tmp_path / "a" / "authorized" / "ground.key").read_text() == "deployed"


def test_a_runtime_refusing_its_key_settings_leaves_no_thread_or_store_behind(tmp_path: Path) -> None:
    """CURVE configured and the uplink key unreadable: the start is refused, and the ZAP thread, the
    ZeroMQ context and the temporary store it had made went on living (the review of 2026-12-04)."""
    import threading

    from runtime.security import make_keys

    made = make_keys(tmp_path / "keys", ["ground"])
    before = {t.ident for t in threading.enumerate()}
    stores = set(Path(tempfile.gettempdir()).glob("runtime-store-*"))
    short = Path(tempfile.mkdtemp(prefix="sr-", dir="/tmp"))
    endpoints = {name: f"ipc://{short}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    settings = Settings.from_config(config.defaults(), device="CPU", curve_server_secret=str(made["server"]),
                                    curve_authorized=str(tmp_path / "keys" / "authorized"),
                                    uplink_public_key=str(tmp_path / "no-such.pem"), **endpoints)
    with pytest.raises(ValueError, match="no-such.pem: not a readable PEM public key"):
        Runtime(settings)
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == [], left
    assert set(Path(tempfile.gettempdir()).glob("runtime-store-*")) == stores
