"""RuntimeProcess start-up failures say what happened: a child that exits at once is reported with
its exit code at once, not as "did not start" (review of 2026-12-03)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hil.runtime_proc import RuntimeProcess


def test_a_runtime_that_exits_at_once_is_reported_with_its_code(tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"runtime exited with code [1-9][0-9]* before it was ready; see .*runtime\.log"):
        RuntimeProcess("CPU", log, 60, config=tmp_path / "no-such.toml")
    assert time.monotonic() - started < 30
    assert "no-such.toml" in log.read_text()  # the log says why


def test_a_banner_before_the_ready_line_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library that prints a line on stdout before the runtime's JSON ready line: the runtime
    starts (before, the banner was parsed as the ready line and the child was left running)."""
    import sys

    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\necho 'some library banner'\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    proc = RuntimeProcess("CPU", tmp_path / "runtime.log", 60)
    try:
        assert set(proc.endpoints) >= {"tiles", "results", "control"}
    finally:
        assert proc.close() == 0
