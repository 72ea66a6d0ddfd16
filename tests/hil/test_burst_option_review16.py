"""Review: ``hil run --burst N`` without rate timing was accepted and ignored (the tiles went out as
fast as acknowledged, or by the push-broom, one by one), while ``--rate`` with another timing is
refused; the report's ``timing`` even named the burst. It is now refused the same way, before a
runtime is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.__main__ import main


@pytest.mark.parametrize("timing", [[], ["--timing", "asap"], ["--timing", "pushbroom"], ["--line-rate", "500"]])
def test_burst_without_rate_timing_is_refused(timing: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--scene", "synthetic:size=64", "--model", str(tmp_path / "no-model"), "--burst", "4",
                 "--report", str(tmp_path / "report"), "--quiet", *timing])
    mode = "pushbroom" if timing and timing[0] == "--line-rate" else (timing[1] if timing else "asap")
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: --burst is for --timing rate (with --rate), not --timing {mode}"
    assert not (tmp_path / "report").exists()
