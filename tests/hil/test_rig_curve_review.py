"""hil run against a runtime under CURVE (a security review): it had no way to give keys, so it
could not even ask such a runtime for its endpoints ("no reply to 'status'")."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runtime import config
from runtime.security import ClientKeys, make_keys
from runtime.server import Runtime, Settings


@pytest.mark.parametrize("channels", [("control",), ("control", "tiles", "results", "telemetry")])
def test_the_rig_runs_against_a_curve_runtime_with_the_ground_keys(
        tmp_path: Path, brightness_bundle: Path, ipc_endpoints: dict[str, str], channels: tuple[str, ...]) -> None:
    """Control only (the default) or every socket under CURVE: the rig opens with its keys exactly
    the sockets the runtime's status names, and every tile comes back scored."""
    import hil
    from tests.hil.test_rig import _write_scene

    keys = tmp_path / "keys"
    make_keys(keys, ["ground"])
    scene, truth = _write_scene(tmp_path)
    settings = Settings.from_config(config.defaults(), device="CPU",
                                    curve_server_secret=str(keys / "server.key_secret"),
                                    curve_authorized=str(keys / "authorized"), curve_channels=channels,
                                    **ipc_endpoints)
    runtime = Runtime(settings)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        assert runtime.status()["curve_channels"] == sorted(channels)
        r = hil.run(scene, brightness_bundle, tmp_path / "r", truth=truth, runtime=runtime.endpoints["control"],
                    keys=ClientKeys.from_dir(keys, "ground")).report
        assert r["tiles_processed"] == r["tiles_sent"] > 0 and r["results_complete"], r
    finally:
        runtime.stop()
        thread.join(30)


def test_keys_for_a_runtime_the_rig_starts_are_refused(tmp_path: Path, brightness_bundle: Path) -> None:
    """That runtime has no CURVE: a CURVE client would wait out every timeout for nothing."""
    import hil

    make_keys(tmp_path / "keys", ["ground"])
    with pytest.raises(ValueError, match="CURVE keys are for a runtime already running under CURVE"):
        hil.run("synthetic", brightness_bundle, tmp_path / "r", keys=ClientKeys.from_dir(tmp_path / "keys", "ground"))


@pytest.mark.parametrize("option", [["--keys", "k"], ["--key-name", "ground"]])
def test_cli_key_options_without_a_running_runtime_or_keys_are_error_lines(
        option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from hil.__main__ import main

    model = Path(__file__).resolve().parents[2] / "models" / "default"
    assert main(["run", "--scene", "synthetic", "--model", str(model), *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and ("--runtime" in err or "--keys DIR" in err), err
