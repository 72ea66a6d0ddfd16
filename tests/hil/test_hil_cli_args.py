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
