"""A payload that checks signatures keeps the signed blob in its store (a security review)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from runtime import config
from runtime.bundle import read_bundle
from runtime.client import ControlClient
from runtime.compiled import compile_bundle, signature_covers
from runtime.server import Settings
from runtime.signing import make_signing_keys, sign
from tests.conftest import runtime_thread


def test_an_uplinked_blob_the_signature_does_not_cover_leaves_the_signed_one_installed(
        tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> None:
    """The same signed bundle uplinked again with its CPU blob recompiled and not signed again: the
    payload compiles the IR (it never imports an uncovered blob), and the store used to take the
    uncovered blob over the signed one, so that every later start compiled on board too."""
    secret, public = make_signing_keys(tmp_path / "keys")
    compiled = compile_bundle(read_bundle(brightness_bundle), "CPU")
    signed = replace(compiled, signature=sign(compiled, secret))
    record, blob = signed.compiled["CPU"]
    recompiled = json.dumps({**json.loads(record), "created": "2000-01-01T00:00:00Z"}).encode()
    unsigned_blob = replace(signed, compiled={"CPU": (recompiled, blob)})
    assert not signature_covers(unsigned_blob, "CPU")
    settings = Settings.from_config(config.defaults(), device="CPU", uplink_public_key=str(public),
                                    store=str(tmp_path / "store"), **ipc_endpoints)
    with runtime_thread(settings) as runtime:
        client = ControlClient(ipc_endpoints["control"])
        try:
            assert client.load_model(signed)["load"]["how"] == "imported"
            assert client.load_model(unsigned_blob)["load"]["how"] == "compiled"
        finally:
            client.close()
        stored = read_bundle(runtime.store.current_path())
    assert stored.compiled["CPU"][0] == record and signature_covers(stored, "CPU")
    with runtime_thread(settings) as restarted:  # serves the store's current: its signed blob again
        client = ControlClient(ipc_endpoints["control"])
        try:  # answered: the loop runs (a stop() before serve() began would be lost)
            assert client.status()["model"]["sha256"] == signed.id
        finally:
            client.close()
        assert restarted.serving is not None and restarted.serving.adapter.load["how"] == "imported"
