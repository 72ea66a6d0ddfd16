"""scripts/fuzz_campaign.py's verdicts: a runtime that crashes or stalls mid-campaign, or rejects a
tile without a reason, is reported in the table and in ``--out``, and fails the campaign; a campaign
that would test nothing is refused. Review of 2026-12-03: each of these escaped or passed before."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from flightsim.streamer import Streamer
from hil.runtime_proc import RuntimeProcess

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import malformed  # noqa: E402


def load_campaign() -> ModuleType:
    """scripts/fuzz_campaign.py as a fresh module, so tests can call and patch it."""
    spec = importlib.util.spec_from_file_location("script_fuzz_campaign", REPO / "scripts" / "fuzz_campaign.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime log the campaign keeps on failure goes under this test's tmp_path, not /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def small_campaign(fc: ModuleType, monkeypatch: pytest.MonkeyPatch, tile_kinds: dict[str, Any],
                   control_kinds: dict[str, Any]) -> list[RuntimeProcess]:
    """Shrink the campaign to the kinds given, with a 3 s ack timeout; return where its runtime goes."""
    procs: list[RuntimeProcess] = []

    class Recorded(RuntimeProcess):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            procs.append(self)

    monkeypatch.setattr(fc, "RuntimeProcess", Recorded)
    monkeypatch.setattr(fc, "Streamer", functools.partial(Streamer, ack_timeout_s=3))
    monkeypatch.setattr(fc, "TILE_KINDS", tile_kinds)
    monkeypatch.setattr(fc, "CONTROL_KINDS", control_kinds)
    return procs


def run_campaign(fc: ModuleType, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    monkeypatch.setattr(sys, "argv", ["fuzz_campaign.py", *args])
    return fc.main()


def test_outcome_of_a_rejection_without_reason_is_not_processed() -> None:
    fc = load_campaign()
    assert fc.outcome({"status": "rejected", "reason": None}) == fc.NO_REASON
    assert fc.outcome({"status": "rejected", "reason": "bad_checksum"}) == "bad_checksum"
    assert fc.outcome({"status": "ok", "reason": None}) == "processed"
    assert fc.failures({"rejected_without_reason": 2, "valid_tile_after_campaign": "ok", "runtime_exit_code": 0})


def test_messages_are_keyed_by_the_tile_id_the_runtime_echoes() -> None:
    fc = load_campaign()
    frames = malformed.valid_tile(np.random.default_rng(0), 3, "fuzz/3/abc")
    assert fc.message_key(frames, "kind/3") == "fuzz/3/abc"
    assert fc.message_key([b"\xff\x00garbage"], "kind/4") == "kind/4"
    assert fc.message_key([b"[" * 100_000 + b"]" * 100_000], "kind/5") == "kind/5"
    assert fc.message_key([b'{"tile_id": "' + b"x" * 5000 + b'"}'], "kind/6") == "kind/6"


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_per_kind_must_be_positive(value: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "fuzz_campaign.py"), "--per-kind", value],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2 and "--per-kind" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_a_crash_mid_campaign_is_reported_with_the_summary(brightness_bundle: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fc = load_campaign()
    make = malformed.TILE_KINDS["extra_frame"]

    def crashing(rng: np.random.Generator, i: int) -> list[bytes]:
        if i == 2:
            os.kill(procs[0].proc.pid, signal.SIGKILL)
            procs[0].proc.wait(10)
        return make(rng, i)

    procs = small_campaign(fc, monkeypatch, {"pixel_bit_flips": malformed.TILE_KINDS["pixel_bit_flips"],
                                              "extra_frame": crashing},
                           {"not_an_object": malformed.CONTROL_KINDS["not_an_object"]})
    out = tmp_path / "fuzz.json"
    code = run_campaign(fc, monkeypatch, ["--per-kind", "5", "--model", str(brightness_bundle), "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["crashes"] == 1 and summary["runtime_exit_code"] == -signal.SIGKILL
    assert summary["tiles"]["pixel_bit_flips"]["lost"] == 0
    assert summary["tiles"]["extra_frame"]["lost"] >= 3  # at least the tiles made after the crash
    assert summary["lost"] == summary["tiles"]["extra_frame"]["lost"]


@pytest.mark.slow
def test_rejections_without_reason_fail_the_campaign(brightness_bundle: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime.protocol as protocol

    decode = protocol.decode_result

    def no_reason(frames: list[bytes]) -> tuple[dict[str, Any], Any]:
        result, mask = decode(frames)
        if result.get("reason") == "bad_checksum":
            result["reason"] = None
        return result, mask

    monkeypatch.setattr(protocol, "decode_result", no_reason)
    fc = load_campaign()
    small_campaign(fc, monkeypatch, {"pixel_bit_flips": malformed.TILE_KINDS["pixel_bit_flips"]},
                   {"not_an_object": malformed.CONTROL_KINDS["not_an_object"]})
    out = tmp_path / "fuzz.json"
    code = run_campaign(fc, monkeypatch, ["--per-kind", "4", "--model", str(brightness_bundle), "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["tiles"]["pixel_bit_flips"]["outcomes"] == {fc.NO_REASON: 4}
    assert summary["rejected_without_reason"] == 4 and summary["valid_tile_after_campaign"] == "ok"


@pytest.mark.slow
def test_a_control_reply_timeout_is_recorded_and_the_campaign_goes_on(brightness_bundle: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime stalls once (SIGSTOP for longer than the reply timeout): that message is a
    timeout, and the next ones, on a fresh REQ socket, are answered."""
    fc = load_campaign()
    monkeypatch.setattr(fc, "REPLY_TIMEOUT_S", 1.0, raising=False)
    make = malformed.CONTROL_KINDS["not_an_object"]
    calls = {"n": 0}

    def stalling(rng: np.random.Generator) -> list[bytes]:
        calls["n"] += 1
        if calls["n"] == 2:
            pid = procs[0].proc.pid
            os.kill(pid, signal.SIGSTOP)
            threading.Timer(2.5, lambda: os.kill(pid, signal.SIGCONT)).start()
        return make(rng)

    procs = small_campaign(fc, monkeypatch, {"pixel_bit_flips": malformed.TILE_KINDS["pixel_bit_flips"]},
                           {"not_an_object": stalling, "unknown_command": malformed.CONTROL_KINDS["unknown_command"]})
    out = tmp_path / "fuzz.json"
    code = run_campaign(fc, monkeypatch, ["--per-kind", "4", "--model", str(brightness_bundle), "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["control_timeouts"] >= 1 and summary["control"]["not_an_object"]["timeouts"] >= 1
    assert summary["control"]["unknown_command"] == {"sent": 4, "replies": {"refused with error": 4}, "timeouts": 0}
    assert summary["crashes"] == 0 and summary["runtime_exit_code"] == 0


# -- review: the campaign checked only "answered", not "answered rightly" ------------------------------


def test_outcomes_a_correct_runtime_does_not_give_fail_the_campaign() -> None:
    """A malformed tile processed (a check of the runtime gone), an internal_error on any kind (a bug
    the runtime turned into a rejection), and a malformed command answered ok or with an internal
    error were all passes before."""
    fc = load_campaign()
    assert fc.unexpected_outcomes("pixel_bit_flips", {"bad_checksum": 3, "processed": 2}) == {"processed": 2}
    assert fc.unexpected_outcomes("truncated_pixels", {"bad_checksum": 1}) == {"bad_checksum": 1}
    # Kinds that mutate at random may leave a valid tile, but never meet a bug.
    assert fc.unexpected_outcomes("field_wrong_type", {"processed": 2, "bad_header": 1}) == {}
    assert fc.unexpected_outcomes("field_wrong_type", {"internal_error": 1}) == {"internal_error": 1}
    assert fc.unexpected_outcomes("same_name_scene", {fc.DUPLICATE: 1}) == {fc.DUPLICATE: 1}
    assert set(fc.EXPECTED_OUTCOMES) <= set(malformed.TILE_KINDS)
    assert fc.control_outcome({"ok": False, "error": "unknown command 'x'"}) == "refused with error"
    assert fc.control_outcome({"ok": True}) == "ok"
    assert fc.control_outcome({"ok": False, "error": "internal error: KeyError('x')"}) == "internal error"
    assert fc.control_outcome({"ok": False}) == "refused without error"
    ok = {"valid_tile_after_campaign": "ok", "runtime_exit_code": 0}
    assert fc.failures(ok) == []
    assert fc.failures({**ok, "unexpected_outcomes": 1}) and fc.failures({**ok, "control_not_refused": 1})


def test_pixel_bit_flips_always_change_the_pixels() -> None:
    """A bit drawn twice flipped back: a 1-byte frame flipped twice at the same bit came back valid."""
    for seed in range(200):
        assert malformed._flip(b"\x00", np.random.default_rng(seed), 2, True) != b"\x00"
        assert malformed._flip(b"\x00\x00\x00", np.random.default_rng(seed), 7, True) != b"\x00\x00\x00"


@pytest.mark.slow
def test_a_runtime_that_accepts_malformed_input_fails_the_campaign(brightness_bundle: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for a runtime that lost its checks: the "pixel bit flips" sent are valid tiles (as if
    the runtime no longer checked checksums: each is processed) and the "unknown command" is a valid
    status command (answered ok). The campaign passed both before."""
    fc = load_campaign()
    small_campaign(fc, monkeypatch, {"pixel_bit_flips": malformed.valid_tile},
                   {"unknown_command": lambda rng: [json.dumps({"v": 1, "cmd": "status"}).encode()]})
    out = tmp_path / "fuzz.json"
    code = run_campaign(fc, monkeypatch, ["--per-kind", "3", "--model", str(brightness_bundle), "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["tiles"]["pixel_bit_flips"]["unexpected"] == {"processed": 3}
    assert summary["unexpected_outcomes"] == 3 and summary["control_not_refused"] == 3
    assert summary["crashes"] == 0 and summary["lost"] == 0 and summary["runtime_exit_code"] == 0
