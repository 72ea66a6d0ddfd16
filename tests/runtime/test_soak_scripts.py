"""The soak scripts' verdicts (scripts/soak.py, scripts/soak_adversarial.py): a soak that measured
nothing, rejected tiles, or ran against a runtime that crashed must fail, say why, and still write
its summary. Review of 2026-12-03: each of these passed, or crashed without a summary, before."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from hil.collector import ResultCollector
from hil.runtime_proc import RuntimeProcess

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    """A script of scripts/ as a module (a fresh copy each call), so tests can call and patch it."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_soak(soak: ModuleType, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    """Run ``soak.main`` with ``args`` as its command line (old and new signatures alike)."""
    monkeypatch.setattr(sys, "argv", ["soak.py", *args])
    return soak.main()


def capture_processes(module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[RuntimeProcess]:
    """Make ``module`` start RuntimeProcesses that are recorded in the list returned."""
    procs: list[RuntimeProcess] = []

    class Recorded(RuntimeProcess):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            procs.append(self)

    monkeypatch.setattr(module, "RuntimeProcess", Recorded)
    return procs


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work folders the scripts keep on failure go under this test's tmp_path, not /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))


# -- scripts/soak.py: pure parts ---------------------------------------------------------------------


def test_soak_mean_skips_none_and_gives_none_for_nothing() -> None:
    soak = load_script("soak")
    assert soak.mean([{"x": None}, {"x": 2.0}, {"x": 4.0}], "x") == 3.0
    assert soak.mean([{"x": None}], "x") is None
    assert soak.mean([], "x") is None


def test_soak_windows_never_overlap_and_need_two_samples() -> None:
    soak = load_script("soak")
    one = [{"t_s": 10.0, "p99_ms": 5.0}]
    base, last, why = soak.settled_windows(one, 0.0, 5)
    assert (base, last) == ([], []) and "not enough samples after warm-up" in why and "1 of 1" in why
    three = [{"t_s": float(t), "p99_ms": 5.0} for t in (5, 10, 15)]
    base, last, why = soak.settled_windows(three, 0.0, 5)
    assert why is None and base == three[:1] and last == three[-1:]
    # Samples before the warm-up, or without a latency, do not count.
    base, last, why = soak.settled_windows(three + [{"t_s": 20.0, "p99_ms": None}], 12.0, 5)
    assert why is not None and "1 of 4" in why
    summary = {"runtime_exit_code": 0, "tiles_lost": 0, "rejected": 0, "samples_error": why,
               "rss_growth_pct": None, "p99_drift_pct": None}
    assert soak.failures(summary) == [why]


def test_soak_fails_on_a_leak_or_a_drift_at_its_limits() -> None:
    """What the soak measures for a leak: resident memory growth between the windows, failing at 5%
    (no test injected one before: the thresholds were not exercised)."""
    soak = load_script("soak")
    base = {"runtime_exit_code": 0, "tiles_lost": 0, "rejected": 0, "rss_growth_pct": 4.9, "p99_drift_pct": -9.9}
    assert soak.failures(base) == []
    assert soak.failures({**base, "rss_growth_pct": 5.0}) == ["resident memory growth 5.0 %, limit 5.0 %"]
    assert soak.failures({**base, "p99_drift_pct": 10.0}) == ["p99 latency drift 10.0 %, limit ±10.0 %"]
    assert len(soak.failures({**base, "rss_growth_pct": None, "p99_drift_pct": None})) == 2


@pytest.mark.parametrize("args, message", [
    (["--sample-s", "0"], "--sample-s: must be a finite number > 0"),
    (["--minutes", "0"], "--minutes: must be a finite number > 0"),
    (["--minutes", "-1"], "--minutes: must be a finite number > 0"),
    (["--warmup-s", "-5"], "--warmup-s: must be a finite number >= 0"),
    (["--compare", "0"], "--compare: must be an integer >= 1"),
    # One sample after the warm-up: base and end would be the same sample (growth 0%, a pass).
    (["--minutes", "0.1", "--sample-s", "4", "--warmup-s", "0"], "not enough samples after warm-up"),
    # A warm-up as long as the run: no sample at all.
    (["--minutes", "0.1", "--sample-s", "1", "--warmup-s", "6"], "not enough samples after warm-up"),
])
def test_soak_refuses_arguments_that_cannot_measure(args: list[str], message: str, brightness_bundle: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "soak.py"), "--model", str(brightness_bundle),
                           *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert message in proc.stderr


# -- scripts/soak.py against a real runtime (a few seconds each) ---------------------------------------


@pytest.mark.slow
def test_soak_counts_and_fails_on_rejected_tiles(brightness_bundle: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every 5th tile's pixels spoiled after the checksum: the runtime rejects those; the soak
    reports them apart (sent == processed + rejected + lost) and fails."""
    frames = Tile.frames

    def spoiled(self: Tile, *a: Any, **k: Any) -> list[bytes]:
        f = frames(self, *a, **k)
        if self.seq % 5 == 0:
            px = bytearray(f[1])
            px[0] ^= 1
            f = [f[0], bytes(px)]
        return f

    monkeypatch.setattr(Tile, "frames", spoiled)
    soak = load_script("soak")
    out = tmp_path / "soak.json"
    code = run_soak(soak, monkeypatch, ["--model", str(brightness_bundle), "--minutes", "0.1", "--sample-s", "2",
                                        "--warmup-s", "0", "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["rejected"] > 0 and summary["processed"] > 0
    assert summary["tiles_sent"] == summary["processed"] + summary["rejected"] + summary["tiles_lost"]
    assert any("rejected" in why for why in summary["failures"])


@pytest.mark.slow
def test_soak_writes_a_summary_when_every_tile_is_rejected(brightness_bundle: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No tile processed: the runtime has no latency to report (None); the summary is still written."""
    frames = Tile.frames

    def spoiled(self: Tile, *a: Any, **k: Any) -> list[bytes]:
        f = frames(self, *a, **k)
        px = bytearray(f[1])
        px[0] ^= 1
        return [f[0], bytes(px)]

    monkeypatch.setattr(Tile, "frames", spoiled)
    soak = load_script("soak")
    out = tmp_path / "soak.json"
    code = run_soak(soak, monkeypatch, ["--model", str(brightness_bundle), "--minutes", "0.1", "--sample-s", "2",
                                        "--warmup-s", "0", "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1 and summary["processed"] == 0 and summary["rejected"] > 0
    assert summary["runtime_p99_drift_pct"] is None


@pytest.mark.slow
def test_soak_fails_on_a_runtime_that_crashes_at_the_end(brightness_bundle: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime dies by SIGSEGV after the last result reached the ground: its exit code fails the
    soak. Also: the sender keeps no per-tile record for the whole run (log.done stays empty)."""
    soak = load_script("soak")
    procs = capture_processes(soak, monkeypatch)
    streamers: list[Streamer] = []

    class RecordedStreamer(Streamer):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            streamers.append(self)

    monkeypatch.setattr(soak, "Streamer", RecordedStreamer)
    close = ResultCollector.close

    def crash_then_close(self: ResultCollector) -> None:
        os.kill(procs[0].proc.pid, signal.SIGSEGV)
        procs[0].proc.wait(10)
        close(self)

    monkeypatch.setattr(ResultCollector, "close", crash_then_close)
    out = tmp_path / "soak.json"
    code = run_soak(soak, monkeypatch, ["--model", str(brightness_bundle), "--minutes", "0.1", "--sample-s", "2",
                                        "--warmup-s", "0", "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["runtime_exit_code"] == -signal.SIGSEGV
    assert any("runtime exit code" in why for why in summary["failures"])
    assert summary["tiles_sent"] > 20 and streamers[0].log.done == set()


@pytest.mark.slow
def test_soak_writes_a_partial_summary_when_the_runtime_dies_mid_soak(brightness_bundle: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL right after the first sample (an OOM kill): the soak stops, writes what it measured
    with the error and the runtime's exit code, keeps its work folder, and exits 1."""
    soak = load_script("soak")
    procs = capture_processes(soak, monkeypatch)
    monkeypatch.setattr(soak, "Streamer", functools.partial(Streamer, ack_timeout_s=3))  # fail fast
    rss = soak.rss_kib

    def rss_then_kill(pid: int) -> int:
        value = rss(pid)
        os.kill(procs[0].proc.pid, signal.SIGKILL)
        return value

    monkeypatch.setattr(soak, "rss_kib", rss_then_kill)
    out = tmp_path / "soak.json"
    code = run_soak(soak, monkeypatch, ["--model", str(brightness_bundle), "--minutes", "0.5", "--sample-s", "2",
                                        "--warmup-s", "0", "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["runtime_exit_code"] == -signal.SIGKILL and summary["error"]
    assert len(summary["samples"]) == 1
    kept = [line for line in capsys.readouterr().err.splitlines() if line.startswith("work folder kept: ")]
    assert kept and Path(kept[0].split()[3]).is_dir()


# -- scripts/soak_adversarial.py -----------------------------------------------------------------------


def test_adversarial_flood_that_sent_nothing_fails() -> None:
    adv = load_script("soak_adversarial")
    base = {"max_tiles_inside": 64, "tiles_inside_peak": 64, "noise_accepted_before_reader_closed": 64,
            "noise_tiles_sent": 100, "noise_tiles_accepted": 100}
    assert adv.flood_failures(base) == []
    assert "tested nothing" in adv.flood_failures({**base, "noise_tiles_sent": 0, "noise_tiles_accepted": 0})[0]
    assert "above its bound" in adv.flood_failures({**base, "tiles_inside_peak": 65})[0]
    assert "before the reader closed" in adv.flood_failures({**base, "noise_accepted_before_reader_closed": 3})[0]


@pytest.mark.slow
def test_adversarial_soak_floods_the_runtime_with_noise(brightness_bundle: Path, tmp_path: Path) -> None:
    """Short phases: noise tiles really reach the runtime (at least its bound before the reader goes),
    it holds at most max_tiles_inside, and nothing is lost."""
    out = tmp_path / "adv.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "soak_adversarial.py"), "--phase-s", "4",
                           "--sample-s", "1", "--model", str(brightness_bundle), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["noise_accepted_before_reader_closed"] >= summary["max_tiles_inside"] > 0
    assert summary["noise_tiles_sent"] >= summary["noise_tiles_accepted"] > 0
    assert summary["max_inside_seen"] <= summary["tiles_inside_peak"] <= summary["max_tiles_inside"]
    assert summary["runtime_exit_code"] == 0 and summary["tiles_lost"] == 0
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_adversarial_fails_on_rejected_tiles() -> None:
    adv = load_script("soak_adversarial")
    summary = {"runtime_exit_code": 0, "tiles_lost": 0, "not_done": 0, "max_tiles_inside": 64, "tiles_inside_peak": 64,
               "noise_accepted_before_reader_closed": 64, "noise_tiles_sent": 100, "noise_tiles_accepted": 100,
               "rss_steady_mb": 150.0, "rss_flood_max_mb": 155.0, "rss_bound_mb": 100.0}
    assert adv.failures(summary) == []
    why = adv.failures({**summary, "rejected": 3, "rejected_reasons": {"internal_error": 3}})
    assert why == ["3 tiles rejected: {'internal_error': 3}"]


@pytest.mark.slow
def test_adversarial_soak_fails_when_tiles_come_back_rejected(brightness_bundle: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Review: a result is an answer, not a success. Tiles rejected (here: every 10th result read as an
    internal_error) were counted as received, and the soak passed with "0 lost"."""
    import runtime.protocol as protocol

    decode = protocol.decode_result

    def some_rejected(frames: list[bytes]) -> tuple[dict[str, Any], Any]:
        result, mask = decode(frames)
        if result.get("tile_id", "").endswith("0"):
            result = {**result, "status": "rejected", "reason": "internal_error"}
        return result, mask

    monkeypatch.setattr(protocol, "decode_result", some_rejected)
    adv = load_script("soak_adversarial")
    out = tmp_path / "adv.json"
    code = adv.main(["--phase-s", "4", "--sample-s", "1", "--model", str(brightness_bundle), "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1 and summary["tiles_lost"] == 0
    assert summary["rejected"] > 0 and summary["rejected_reasons"] == {"internal_error": summary["rejected"]}
    assert any("rejected" in why for why in summary["failures"])
