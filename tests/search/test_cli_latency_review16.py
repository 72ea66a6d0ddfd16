"""`python -m search run`'s last line on a device without a Myriad X cost-model estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.__main__ import main


@pytest.mark.slow
def test_run_on_cpu_prints_the_measured_latency_the_fitness_used(
        tmp_path: Path, tiny_config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With ``[candidate] hil_device = "CPU"`` (a device hil has, accepted up front) no candidate has
    an estimate, and the fitness ranks them by the runtime's measured p50. The search finished and
    wrote its flight model and report, then the command died on ``None:.1f`` (a TypeError traceback,
    exit 1) instead of printing its summary."""
    config = tmp_path / "cpu.toml"
    text = tiny_config_path.read_text().replace("aligned_epochs = 1", 'aligned_epochs = 1\nhil_device = "CPU"')
    config.write_text(text.replace("population = 3\ngenerations = 2", "population = 1\ngenerations = 1"))
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best " in out and "measured runtime p50 on CPU" in out and "trained 1 candidates" in out
    assert (tmp_path / "out" / "flight_model" / "manifest.json").is_file()
