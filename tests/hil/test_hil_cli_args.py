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


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5552", "foo", "tcp://", "inproc://runtime"])
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
    assert capsys.readouterr().err.strip() == f"error: --report {tmp_path / 'file'}: a file, not a folder"


@pytest.mark.parametrize("option, said", [(["--profile", "nope"], "unknown target profile 'nope'; valid: "),
                                          (["--runtime-config", "NONE"], "--runtime-config NONE: No such file"),
                                          (["--runtime-config", "NEG"], "--runtime-config NEG: [vectorize] batch")])
def test_what_the_started_runtime_would_refuse_is_said_by_hil(option: list[str], said: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Else the operator reads only "the runtime exited before it was ready" and the reason is in its log.
    (tmp_path / "neg.toml").write_text("[vectorize]\nbatch = -1\n")
    names = {"NONE": str(tmp_path / "none.toml"), "NEG": str(tmp_path / "neg.toml")}
    option = [names.get(o, o) for o in option]
    assert main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), "--quiet",
                 "--report", str(tmp_path / "r"), *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said.replace("NONE", names["NONE"]).replace("NEG", names["NEG"]) in err


@pytest.mark.parametrize("bands", ["1.7,2,3", "nan,1,1", "0,1,2", ""])
def test_bands_are_band_numbers(bands: str, capsys: pytest.CaptureFixture[str]) -> None:
    # 1.7 was truncated to band 1 and nan was "invalid <lambda> value"
    with pytest.raises(SystemExit):
        main(["run", "--scene", "synthetic", "--model", str(REPO / "models/default"), "--bands", bands])
    assert "argument --bands: must be comma-separated band numbers >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("scene, said", [("synthetic:seed=3", "give the seed once"),
                                         ("synthetic:seeds=100-101", "give the seed once"),
                                         ("some.tif", "--seed is for --scene synthetic"),
                                         ("synthetic_scene.tif", "--seed is for --scene synthetic")])
def test_a_seed_that_would_be_ignored_is_refused(scene: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--scene", scene, "--seed", "4", "--model", str(REPO / "models/default")]) == 2
    assert said in capsys.readouterr().err


def test_timing_rate_takes_the_config_s_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # [run] rate_hz in --config is a rate, as rig.run reads it; without one, --timing rate asks for --rate
    (tmp_path / "rate.toml").write_text("[run]\nrate_hz = 5000.0\n")
    assert main(["run", "--scene", "synthetic:size=256", "--model", str(REPO / "models/default"), "--device", "CPU",
                 "--timing", "rate", "--config", str(tmp_path / "rate.toml"), "--quiet",
                 "--report", str(tmp_path / "r")]) == 0
    import json

    assert json.loads((tmp_path / "r" / "report.json").read_text())["timing"]["rate_hz"] == 5000.0


@pytest.mark.parametrize("content", [b"window 4\n", b"\xff\xfe\x00"])
def test_a_config_that_is_no_toml_is_an_error_naming_it(content: bytes, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "h.toml").write_bytes(content)
    assert main(["run", "--config", str(tmp_path / "h.toml"), "--scene", "synthetic",
                 "--model", str(REPO / "models/default")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --config {tmp_path / 'h.toml'}: not valid TOML: ")
