"""The short soak CI runs: a real runtime process under continuous load loses nothing and its
resident memory is sampled. The 30-minute figures are in docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "soak.py"), "--minutes", "0.25", "--sample-s", "5",
         "--warmup-s", "5", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["tiles_sent"] > 20 and summary["tiles_lost"] == 0 and summary["rejected"] == 0
    assert len(summary["samples"]) >= 2 and all(s["rss_kib"] > 0 for s in summary["samples"])
