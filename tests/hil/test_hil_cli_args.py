"""``python -m hil run``: a count of 0 is refused, not replaced by the default, and a missing
--config is one ``error:`` line (reviewer's defects 9 and 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.__main__ import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("option", ["--window", "--burst"])
def test_zero_is_refused_not_replaced_by_the_default(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), option, "0"])
    assert exit_.value.code == 2
    assert f"argument {option}: must be an integer >= 1, got '0'" in capsys.readouterr().err


def test_a_missing_config_file_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "none.toml"), "--scene", "synthetic",
                 "--model", str(REPO / "models/default")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --config {tmp_path / 'none.toml'}: No such file or directory"


@pytest.mark.parametrize("option", [["--device", "CPU"], ["--profile", "fp32"], ["--no-ground-ack"],
                                    ["--runtime-config", "b.toml"]])
def test_options_for_a_runtime_started_here_are_refused_with_runtime(option: list[str],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # A running runtime keeps its own device and settings: taking these silently would report a
    # measurement of something other than what the operator asked for.
    assert main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"),
                 "--runtime", "tcp://127.0.0.1:1", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot be given with --runtime" in err and option[0].split("/")[0] in err


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5552", "foo", "tcp://"])
def test_a_runtime_that_is_no_endpoint_is_an_error_line(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), "--runtime", endpoint]) == 2
    assert "is not a ZeroMQ endpoint" in capsys.readouterr().err


@pytest.mark.parametrize("args, said", [(["--rate", "0"], "argument --rate"), (["--rate", "nan"], "argument --rate"),
                                        (["--line-rate", "nan"], "argument --line-rate")])
def test_rates_must_be_positive_and_finite(args: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), *args])
    assert exit_.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("args, said", [(["--timing", "asap", "--rate", "2"], "--rate is for --timing rate"),
                                        (["--timing", "rate"], "--timing rate needs --rate")])
def test_rate_and_timing_must_agree(args: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), *args]) == 2
    assert said in capsys.readouterr().err


def test_a_file_as_report_folder_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    assert main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), "--limit", "1",
                 "--report", str(tmp_path / "file"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
