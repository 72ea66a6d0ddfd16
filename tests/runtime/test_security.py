"""CURVE on the control channel: with keys configured, only authorised clients command the payload."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runtime import config
from runtime.client import ControlClient, ControlError
from runtime.security import ClientKeys, make_keys
from runtime.server import Runtime, Settings
from tests.conftest import make_brightness_bundle


@pytest.mark.slow
def test_only_authorised_clients_can_load_a_model(tmp_path: Path, brightness_bundle: Path,
                                                  ipc_endpoints: dict[str, str]) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, ["ground"])
    make_keys(tmp_path / "other", ["intruder"])  # a valid key pair the runtime does not know
    settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints,
                                    curve_server_secret=str(keys / "server.key_secret"),
                                    curve_authorized=str(keys / "authorized"))
    runtime = Runtime(settings, model=brightness_bundle)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    new = make_brightness_bundle(tmp_path / "new", name="new")
    try:
        with pytest.raises(ControlError, match="no reply"):
            ControlClient(ipc_endpoints["control"], timeout_s=2).load_model(new)
        intruder = ClientKeys.from_files(tmp_path / "other" / "intruder.key_secret", keys / "server.key")
        with pytest.raises(ControlError, match="no reply"):
            ControlClient(ipc_endpoints["control"], timeout_s=2, keys=intruder).load_model(new)
        ground = ControlClient(ipc_endpoints["control"], keys=ClientKeys.from_dir(keys, "ground"))
        assert ground.status()["model"]["name"] == "brightness"
        assert ground.load_model(new)["model"]["name"] == "new"
    finally:
        runtime.stop()
        thread.join(30)


def test_keys_command_and_half_configured_curve_is_an_error(tmp_path: Path, ipc_endpoints: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "runtime", "keys", "--out", str(tmp_path / "k")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k" / "server.key_secret").is_file() and (tmp_path / "k" / "authorized" / "ground.key").is_file()
    settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints,
                                    curve_server_secret=str(tmp_path / "k" / "server.key_secret"))
    with pytest.raises(ValueError, match="both"):
        Runtime(settings)
