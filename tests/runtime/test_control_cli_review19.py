"""``python -m runtime control``: an operator's command-line client of a serving runtime's control
socket (until now reachable from Python only, runtime.client.ControlClient), against a real runtime
started here, with CURVE on its control socket and signed uplinks: the reply printed as JSON, the
exit status 1 on an error reply or no reply, 2 on a mistake in the arguments."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import config
from runtime.__main__ import main
from runtime.security import make_keys
from runtime.settings import Settings
from runtime.signing import make_signing_keys, sign_bundle_dir
from tests.conftest import make_brightness_bundle, runtime_thread

REPO = Path(__file__).resolve().parents[2]


def _control(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    rc = main(["control", *args])
    out, err = capsys.readouterr()
    return rc, json.loads(out) if out.strip() else {}, err


def test_control_commands_a_curve_runtime_that_takes_signed_models(
        tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, ["ground"])
    signing, verify = make_signing_keys(keys)
    settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints,
                                    curve_server_secret=str(keys / "server.key_secret"),
                                    curve_authorized=str(keys / "authorized"), uplink_public_key=str(verify))
    endpoint = ["--endpoint", ipc_endpoints["control"]]
    with runtime_thread(settings):  # on leaving, checked to have stopped
        # the real command line, in its own process
        proc = subprocess.run([sys.executable, "-m", "runtime", "control", *endpoint, "--keys", str(keys), "status"],
                              capture_output=True, text=True, cwd=REPO, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["state"] == "no_model"

        # an unsigned model: the runtime's error reply, printed, and exit status 1
        unsigned = tmp_path / "unsigned"
        shutil.copytree(brightness_bundle, unsigned)
        rc, reply, err = _control(capsys, *endpoint, "--keys", str(keys), "load-model", str(unsigned))
        assert rc == 1 and reply["ok"] is False and "model refused" in reply["error"] and err.startswith("error: ")

        signed = tmp_path / "signed"
        make_brightness_bundle(signed, name="signed")
        sign_bundle_dir(signed, signing)
        rc, reply, _ = _control(capsys, *endpoint, "--keys", str(keys), "load-model", str(signed))
        assert rc == 0 and reply["ok"] is True and reply["model"]["name"] == "signed"
        rc, reply, _ = _control(capsys, *endpoint, "--keys", str(keys), "status")
        assert rc == 0 and reply["state"] == "serving" and reply["model"]["name"] == "signed"

        # without the keys the CURVE socket never answers: exit status 1, said, not a hang
        rc, reply, err = _control(capsys, *endpoint, "--timeout-s", "1", "status")
        assert rc == 1 and reply["ok"] is False and ("no reply" in err or "could not send" in err), err

        # mistakes in the arguments: 2, before anything is sent
        rc, _, err = _control(capsys, *endpoint, "--keys", str(keys), "load-model", str(tmp_path))
        assert rc == 2 and "manifest.json" in err
        rc, _, err = _control(capsys, *endpoint, "--key-name", "ground", "status")
        assert rc == 2 and "--keys" in err

        rc, reply, _ = _control(capsys, *endpoint, "--keys", str(keys), "shutdown")
        assert rc == 0 and reply["ok"] is True
