"""``runtime supervise`` keeps what was uplinked across a restart (reviewer's finding): every runtime it
starts shares one store (the operator's, or one it makes and names), and a restarted runtime serves
the store's ``current`` model rather than reinstalling ``--model`` over it. Its timings are range
checked, and ``--starve-s 0`` is refused rather than taken for the default.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from runtime import config
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle
from runtime.client import ControlClient
from runtime.store import BundleStore
from runtime.supervisor import Supervisor, main

REPO = Path(__file__).resolve().parents[2]
TIMINGS = {"starve_s": 30.0, "backoff_s": 0.05, "max_backoff_s": 0.2}


def _events(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith('{"event"')]


def test_a_restart_serves_the_store_current_model_and_a_first_start_the_given_one(
        tmp_path: Path, brightness_bundle: Path) -> None:
    store = tmp_path / "store"
    sup = Supervisor(["--device", "CPU", "--model", str(brightness_bundle), "--store", str(store)], **TIMINGS)
    assert sup.store == store
    assert sup.command(restart=False) == sup.cmd  # the first start: the operator's --model, as given
    assert sup.command(restart=True) == sup.cmd  # nothing installed yet: --model is all there is
    BundleStore(store).install(read_bundle(brightness_bundle))  # what the first runtime (or an uplink) did
    restart = sup.command(restart=True)
    assert "--model" not in restart and str(brightness_bundle) not in restart
    assert restart[restart.index("--store") + 1] == str(store) and "--watchdog-file" in restart
    assert sup.command(restart=False) == sup.cmd


def test_model_given_with_an_equals_sign_is_left_out_on_a_restart_too(tmp_path: Path, brightness_bundle: Path) -> None:
    store = tmp_path / "store"
    BundleStore(store).install(read_bundle(brightness_bundle))
    sup = Supervisor([f"--model={brightness_bundle}", f"--store={store}"], **TIMINGS)
    assert not any(arg.startswith("--model") for arg in sup.command(restart=True))
    assert f"--store={store}" in sup.command(restart=True)


def test_without_a_store_one_is_made_shared_and_named(capsys: pytest.CaptureFixture[str]) -> None:
    """Each runtime used to make its own temporary store, so a restart lost the uplinked model."""
    sup = Supervisor(["--device", "CPU"], **TIMINGS)
    try:
        assert sup.store.is_dir() and sup.cmd[sup.cmd.index("--store") + 1] == str(sup.store)
        said = [e for e in _events(capsys.readouterr().err) if e["event"] == "supervisor_store"]
        assert len(said) == 1 and said[0]["path"] == str(sup.store)
    finally:
        sup._drop_empty_store()  # no model was installed in it: removed
    assert not sup.store.exists()


def test_a_store_named_in_the_serve_config_is_used(tmp_path: Path) -> None:
    (tmp_path / "serve.toml").write_text(f'[models]\nstore = "{tmp_path / "configured"}"\n')
    sup = Supervisor(["--config", str(tmp_path / "serve.toml")], **TIMINGS)
    assert sup.store == tmp_path / "configured" and "--store" not in sup.cmd


@pytest.mark.parametrize(("change", "message"), [
    ({"starve_s": 0}, r"\[supervise\] starve_s \(--starve-s\) must be a finite number > 0; got 0"),
    ({"starve_s": -5.0}, r"starve_s \(--starve-s\) must be a finite number > 0; got -5.0"),
    ({"backoff_s": 0}, r"\[supervise\] backoff_s must be a finite number > 0; got 0"),
    ({"max_backoff_s": 0.01}, r"\[supervise\] max_backoff_s must be a finite number >= 0.05; got 0.01"),
    ({"backoff_s": "1"}, r"\[supervise\] backoff_s must be a finite number > 0; got '1'"),
    ({"max_restarts": -1}, r"--max-restarts must be an integer >= 0; got -1"),
])
def test_supervisor_timings_out_of_range_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Supervisor(["--store", "/nonexistent-never-made"], **{**TIMINGS, **change})


def test_starve_s_zero_on_the_command_line_is_refused_not_taken_for_the_default(tmp_path: Path) -> None:
    cfg = config.defaults()["supervise"]
    with pytest.raises(ValueError, match=r"starve_s \(--starve-s\) must be a finite number > 0; got 0"):
        main(["--store", str(tmp_path)], cfg, starve_s=0.0)
    with pytest.raises(ValueError, match=r"\[supervise\] max_backoff_s"):
        main(["--store", str(tmp_path)], {**cfg, "max_backoff_s": -1.0})


@pytest.mark.slow
def test_a_model_uplinked_before_a_restart_serves_after_it(tmp_path: Path, brightness_bundle: Path) -> None:
    """End to end, as an operator runs it: ``supervise -- --model M`` with no --store, a model
    uplinked, the runtime wedged and restarted: the uplinked model serves, not M."""
    base = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(base)
    manifest["name"] = "uplinked"
    uplinked = rewrite_bundle(base, tmp_path / "uplinked", manifest)
    short = tempfile.mkdtemp(prefix="sv-", dir="/tmp")
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    serve = ["--device", "CPU", "--model", str(brightness_bundle), *sum(([f"--{k}", v] for k, v in endpoints.items()), [])]
    log = tmp_path / "supervisor.log"
    sup = subprocess.Popen([sys.executable, "-m", "runtime", "supervise", "--starve-s", "3", "--", *serve],
                           stdout=subprocess.PIPE, stderr=open(log, "wb"), cwd=REPO)
    try:
        assert json.loads(sup.stdout.readline())["event"] == "ready"  # type: ignore[union-attr]
        assert ControlClient(endpoints["control"], timeout_s=60).load_model(uplinked)["model"]["name"] == "uplinked"
        runtime_pid = int(subprocess.run(["pgrep", "-P", str(sup.pid)], capture_output=True, text=True).stdout.split()[0])
        os.kill(runtime_pid, signal.SIGSTOP)  # wedged: its watchdog starves, the supervisor restarts it
        assert json.loads(sup.stdout.readline())["event"] == "ready"  # type: ignore[union-attr]
        assert ControlClient(endpoints["control"], timeout_s=60).status()["model"]["name"] == "uplinked"
        events = _events(log.read_text())
        assert [e["restarts"] for e in events if e["event"] == "runtime_restarted"] == [1], events
    finally:
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(40)
        except subprocess.TimeoutExpired:
            sup.kill()
        for event in _events(log.read_text()):
            if event["event"] == "supervisor_store":  # it outlives the supervisor, by design
                shutil.rmtree(event["path"], ignore_errors=True)


def test_a_starve_s_not_above_the_runtime_s_health_period_is_refused(tmp_path: Path) -> None:
    """A runtime feeds its watchdog once per [health] period_s: a supervisor told to restart it when
    unfed for less than that (--starve-s 2 with a serve --config of period_s = 3) killed a healthy,
    idle runtime every 2 s, for ever. Refused at start, naming both; a longer starve_s is taken."""
    (tmp_path / "serve.toml").write_text("[health]\nperiod_s = 3.0\n")
    serve = ["--config", str(tmp_path / "serve.toml"), "--store", str(tmp_path / "store")]
    with pytest.raises(ValueError, match=r"starve_s \(--starve-s\) 2 must be more than the runtime's \[health\] "
                                         r"period_s \(3\)"):
        Supervisor(serve, **{**TIMINGS, "starve_s": 2.0})
    with pytest.raises(ValueError, match=r"period_s \(1\)"):  # the default period, without a --config
        Supervisor(["--store", str(tmp_path / "store")], **{**TIMINGS, "starve_s": 0.5})
    assert Supervisor(serve, **{**TIMINGS, "starve_s": 4.0}).starve_s == 4.0
