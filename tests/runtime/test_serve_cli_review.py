"""``python -m runtime serve`` as an operator starts and stops it (a review of the command line):
a tcp port out of 0-65535 is refused (ZeroMQ took it modulo 65536 and bound another port),
``--curve-channels`` without CURVE keys or with an unknown channel is refused (it was served with no
CURVE at all), and a SIGTERM or SIGINT during the start (a compile may take minutes) ends it cleanly
(it was a KeyboardInterrupt traceback, or a kill), as does a stop() before serve()."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime import config
from runtime.__main__ import main
from runtime.config import check_endpoint
from runtime.server import Runtime, Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:-5", "tcp://*:65536"])
def test_a_tcp_port_out_of_range_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match=r"--tiles .*: port -?\d+ is not in 0-65535 \(ZeroMQ would take it modulo"):
        check_endpoint("--tiles", endpoint, "tcp://127.0.0.1:5550")


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:65535", "tcp://*:*", "tcp://[::1]:5550", "ipc:///tmp/t:99999"])
def test_ports_in_range_and_other_forms_pass(endpoint: str) -> None:
    check_endpoint("--tiles", endpoint, "tcp://127.0.0.1:5550")


def _serve(args: list[str], ipc_endpoints: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``runtime serve`` with ``args`` on ipc endpoints; a runtime still serving after 60 s is a failure."""
    endpoints = [f"--{name}={address}" for name, address in ipc_endpoints.items()]
    try:
        return subprocess.run([sys.executable, "-m", "runtime", "serve", "--device", "CPU", *endpoints, *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve {args} was not refused: it served")


def test_serve_refuses_a_port_out_of_range(ipc_endpoints: dict[str, str]) -> None:
    proc = _serve(["--tiles", "tcp://127.0.0.1:99999"], ipc_endpoints)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "error: [endpoints] tiles (--tiles) 'tcp://127.0.0.1:99999': port 99999 is not in 0-65535" in proc.stderr


def test_curve_channels_without_keys_are_refused(ipc_endpoints: dict[str, str]) -> None:
    proc = _serve(["--curve-channels", "control,tiles"], ipc_endpoints)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "error: --curve-channels control,tiles: CURVE needs --curve-server-secret" in proc.stderr


def test_an_unknown_curve_channel_is_refused_without_keys(ipc_endpoints: dict[str, str]) -> None:
    settings = Settings.from_config(config.defaults(), device="CPU", curve_channels=("control", "tile"),
                                    **ipc_endpoints)
    try:
        runtime = Runtime(settings)
    except ValueError as exc:
        assert "curve_channels: unknown channel(s) ['tile']; valid: [" in str(exc)
    else:
        runtime.close()
        pytest.fail("an unknown curve channel was accepted")


class _StartInterrupted:
    """A stand-in Runtime whose start is interrupted by a SIGTERM (a long compile, told to stop)."""

    made: list[_StartInterrupted] = []

    def __init__(self, settings: Settings, model: Any = None):
        self.calls: list[str] = []
        self.endpoints: dict[str, str] = {}
        self.device_in_use = "CPU"
        _StartInterrupted.made.append(self)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while starting

    def stop(self) -> None:
        self.calls.append("stop")

    def serve(self) -> None:
        self.calls.append("serve")

    def close(self) -> None:
        self.calls.append("close")


def test_a_signal_during_the_start_ends_it_without_serving(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[int] = []
    before = {sig: signal.signal(sig, lambda n, _f: seen.append(n)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        monkeypatch.setattr("runtime.server.Runtime", _StartInterrupted)
        _StartInterrupted.made.clear()
        mine = {sig: signal.getsignal(sig) for sig in before}
        assert main(["serve", "--device", "CPU"]) == 0
        # called in-process, serve gives the caller its own handlers back
        assert {sig: signal.getsignal(sig) for sig in before} == mine
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    assert _StartInterrupted.made[0].calls == ["close"], "served although told to stop while starting"
    assert '"event": "ready"' not in capsys.readouterr().out


def test_stop_before_serve_still_stops(ipc_endpoints: dict[str, str]) -> None:
    runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints))
    runtime.stop()  # a signal between the start and serve()
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        runtime.stop()
        thread.join(30)
        pytest.fail("serve() forgot a stop() asked before it")


def test_supervise_config_reaches_the_runtime_it_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``supervise --config F -- ...``: the runtime it starts is served with F too (it was served on
    the defaults, bound to other endpoints than F's, F's [supervise] table alone read)."""
    seen: list[list[str]] = []
    monkeypatch.setattr("runtime.supervisor.main", lambda argv, *_a, **_k: seen.append(list(argv)) or 0)
    conf = tmp_path / "flight.toml"
    conf.write_text("[supervise]\nstarve_s = 20.0\n")
    assert main(["supervise", "--config", str(conf), "--", "--device", "CPU"]) == 0
    assert seen[-1] == ["--config", str(conf), "--device", "CPU"]
    # a serve --config of its own is left as given
    assert main(["supervise", "--config", str(conf), "--", "--config=other.toml", "--device", "CPU"]) == 0
    assert seen[-1] == ["--config=other.toml", "--device", "CPU"]


def test_infer_and_benchmark_compute_in_the_configured_profile(tmp_path: Path, brightness_bundle: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``[inference] profile`` of a --config is the payload's numerics: ``infer`` and ``benchmark`` use it as
    ``serve`` does (they used the model's or the twin's default, the file computed in other numerics)."""
    import json

    import numpy as np

    conf = tmp_path / "flight.toml"
    conf.write_text('[inference]\nprofile = "fp32"\n')
    np.save(tmp_path / "scene.npy", np.zeros((3, 64, 64), np.uint8))
    out = tmp_path / "v.geojson"
    assert main(["infer", "--config", str(conf), "--model", str(brightness_bundle), "--input",
                 str(tmp_path / "scene.npy"), "--output", str(out), "--device", "myriadx-emu"]) == 0
    numerics = json.loads(out.read_text())["numerics"]
    assert (numerics["profile"], numerics["profile_source"]) == ("fp32", "requested")
    seen: list[Any] = []
    monkeypatch.setattr("runtime.bench.benchmark", lambda *a, **_k: seen.append(a) or {})
    assert main(["benchmark", "--config", str(conf), "--model", str(brightness_bundle), "--device", "myriadx-emu",
                 "--json"]) == 0
    assert seen[-1][1:] == ("myriadx-emu", 5.0, "f32", "fp32")


@pytest.mark.parametrize(("setting", "value"), [("device", "CPUU"), ("fallback_device", "myriadx_emu")])
def test_a_device_of_no_known_family_is_refused_at_start(setting: str, value: str) -> None:
    """``serve --device CPUU`` with no model said "ready" on it, the typo found only at the first
    uplink (review, 2026-12-05); a family known but absent (a stick plugged in later) still passes."""
    cfg = config.defaults()
    if setting == "device":
        cfg["inference"] = {**cfg["inference"], "device": value}
    else:
        cfg["device_recovery"] = {**cfg["device_recovery"], "fallback_device": value}
    with pytest.raises(ValueError, match=rf"{setting} .*'{value}': no such device family; valid: 'flight'"):
        Settings.from_config(cfg)
    cfg["inference"] = {**cfg["inference"], "device": "MYRIAD.1.2-ma2480"}
    cfg["device_recovery"] = {**cfg["device_recovery"], "fallback_device": "myriadx-emu"}
    assert Settings.from_config(cfg).device == "MYRIAD.1.2-ma2480"


def test_sigterm_ends_a_hung_start_at_once(tmp_path: Path) -> None:
    """A start that hangs (a device open blocked in native code runs no Python handler) ends at the
    first SIGTERM, as a supervisor expects: review of 2026-12-05's change, which had made SIGTERM
    during the start wait for the start to finish (a supervisor then waited for its SIGKILL)."""
    import os
    import subprocess
    import sys
    import time

    (tmp_path / "sitecustomize.py").write_text(
        "import time\nimport runtime.server as s\n"
        "def _hang(self, *a, **k):\n    time.sleep(60)\n"
        "s.Runtime.__init__ = _hang\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "serve", "--device", "CPU"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)  # the start is under way, inside the hanging constructor
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
