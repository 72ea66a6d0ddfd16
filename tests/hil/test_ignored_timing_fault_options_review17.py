"""``python -m hil run``: --line-rate outside push-broom timing and --fault-seed without --faults
were taken and silently ignored (the report's timing even listed the line rate as if in effect);
they are refused, as --rate and --burst outside rate timing are."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.__main__ import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args, said", [
    (["--timing", "asap", "--line-rate", "100"], "--line-rate is for --timing pushbroom, not --timing asap"),
    (["--rate", "50", "--line-rate", "100"], "--line-rate is for --timing pushbroom, not --timing rate"),
    (["--fault-seed", "3"], "--fault-seed is the seed of --faults draws"),
])
def test_an_option_that_would_be_ignored_is_refused(args: list[str], said: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), "--device", "CPU",
                 "--report", str(tmp_path / "r"), "--quiet", *args]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "r" / "report.json").exists()
