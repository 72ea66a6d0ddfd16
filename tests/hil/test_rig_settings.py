"""hil's settings: hil/defaults.toml typed and checked once, so a bad value is refused with its range
before a runtime is started."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hil.settings import DEFAULTS, Settings
from runtime.config import tomllib

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_defaults_are_the_toml_values_typed() -> None:
    toml = tomllib.loads((REPO / "hil" / "defaults.toml").read_text())
    for table in ("run", "score", "overview"):
        section = getattr(DEFAULTS, table)
        assert {f.name for f in dataclasses.fields(section)} == set(toml[table]), table
        for key, value in toml[table].items():
            assert getattr(section, key) == (Path(value) if key == "report_dir" else value), (table, key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.run.window = 2  # type: ignore[misc]


@pytest.mark.parametrize("text,message", [
    ('[run]\ntiming = "fast"\n', r"\[run\] timing must be one of \['asap', 'rate', 'pushbroom'\]; got 'fast'"),
    ("[run]\nwindow = 0\n", r"\[run\] window must be an integer >= 1; got 0"),
    ("[run]\nwindow = 2.5\n", r"\[run\] window must be an integer >= 1; got 2.5"),
    ("[run]\nresult_timeout_s = 0\n", r"\[run\] result_timeout_s must be a finite number > 0"),
    ("[run]\nrate_hz = -1\n", r"\[run\] rate_hz .* must be a finite number >= 0"),
    ('[run]\noverlap_px = "8"\n', r"\[run\] overlap_px must be an integer >= 0; got '8'"),
    ("[score]\nmatch_iou = 1.5\n", r"\[score\] match_iou must be a number in \(0, 1\]; got 1.5"),
    ("[score]\nmatch_iou = 0\n", r"\[score\] match_iou must be a number in \(0, 1\]; got 0"),
    ("[overview]\nmax_panels = 0\n", r"\[overview\] max_panels must be an integer >= 1"),
    ("[run]\nreport_dir = 3\n", r"\[run\] report_dir must be a folder path, e.g. 'out/hil'; got 3"),
    ('[score]\nborder_rule = "largest-or-passed"\n',
     r"\[score\] border_rule 'largest-or-passed'; valid: \['largest-else-passed', 'piecewise'"),
    ("[run]\nwindw = 4\n", r"unknown setting 'windw'; valid: .*'window'"),
    ("[score]\nmerge_tolerance_px = 0.5\n", r"merge_tolerance_px must be a number in \[0, 0.5\); got 0.5"),
])
def test_a_bad_value_is_refused_with_what_is_valid(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "h.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Settings.load(path)


def test_hil_run_refuses_a_bad_setting_before_it_starts_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hil.__main__ import main

    cfg = tmp_path / "h.toml"
    cfg.write_text("[run]\nwindow = 0\n")
    report = tmp_path / "report"
    assert main(["run", "--config", str(cfg), "--scene", "synthetic", "--model", str(REPO / "models/default"),
                 "--report", str(report), "--quiet"]) == 2
    assert "[run] window must be an integer >= 1" in capsys.readouterr().err
    assert not report.exists()
