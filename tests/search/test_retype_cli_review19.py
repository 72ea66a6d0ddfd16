"""`python -m search retype` given both `--config` and `--input-dtype`: the config (read only for its
[export] input_dtype) was silently ignored, even one naming another type; now refused, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.__main__ import main

MODELS = Path(__file__).parents[2] / "models"


def test_config_and_input_dtype_together_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "u16.toml"
    config.write_text("[export]\ninput_dtype = 'uint16'\n")
    out = tmp_path / "out"
    rc = main(["retype", "--model", str(MODELS / "default"), "--config", str(config), "--input-dtype", "uint8",
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "--config" in err and "--input-dtype uint8" in err, err
    assert not out.exists()


def test_config_alone_gives_the_input_dtype(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "u16.toml"
    config.write_text("[export]\ninput_dtype = 'uint16'\n")
    out = tmp_path / "out"
    assert main(["retype", "--model", str(MODELS / "default"), "--config", str(config), "--out", str(out)]) == 0
    assert "input uint16" in capsys.readouterr().out
