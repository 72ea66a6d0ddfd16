"""A runtime configuration that cannot work is refused at start, naming the setting and what is valid:
[vectorize] connectivity = 6 used to start, then fail every tile (inference_failed), and
[limits] max_tiles_inside = 0 would make the loop never read a tile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime import config
from runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("table", "key", "value", "says"), [
    ("vectorize", "connectivity", 6, r"\[vectorize\] connectivity.*one of \[4, 8\]; got 6"),
    ("vectorize", "min_area_px", -1, r"\[vectorize\] min_area_px.*integer >= 0"),
    ("vectorize", "min_area_px", 2.5, r"\[vectorize\] min_area_px.*integer"),
    ("vectorize", "simplify_px", -0.5, r"\[vectorize\] simplify_px.*>= 0"),
    ("vectorize", "simplify_px", float("nan"), r"\[vectorize\] simplify_px"),
    ("vectorize", "workers", 0, r"\[vectorize\] workers.*>= 1"),
    ("vectorize", "batch", 0, r"\[vectorize\] batch.*>= 1"),
    ("vectorize", "batch_wait_ms", -1, r"\[vectorize\] batch_wait_ms.*>= 0"),
    ("limits", "max_tiles_inside", 0, r"\[limits\] max_tiles_inside.*>= 1; got 0"),
    ("limits", "max_message_bytes", 0, r"\[limits\] max_message_bytes.*>= 1"),
    ("limits", "max_tile_pixels", -5, r"\[limits\] max_tile_pixels.*>= 1"),
    ("limits", "max_tile_bands", 0, r"\[limits\] max_tile_bands.*>= 1"),
    ("limits", "results_hwm", 0, r"\[limits\] results_hwm.*>= 1"),
    ("limits", "max_tiles_inside", "64", r"\[limits\] max_tiles_inside.*integer"),
    ("limits", "max_tiles_inside", True, r"\[limits\] max_tiles_inside.*integer"),
    ("inference", "infer_requests", -1, r"\[inference\] infer_requests.*>= 0"),
    ("inference", "collect_group", 0, r"\[inference\] collect_group.*>= 1"),
    ("telemetry", "period_s", 0, r"\[telemetry\] period_s.*> 0"),
    ("delivery", "remember_tiles", 0, r"\[delivery\] remember_tiles.*>= 1"),
    ("delivery", "shutdown_grace_s", -1.0, r"\[delivery\] shutdown_grace_s.*>= 0"),
    ("delivery", "ground_ack_timeout_s", 0.0, r"\[delivery\] ground_ack_timeout_s.*> 0"),
    ("health", "period_s", 0.0, r"\[health\] period_s.*> 0"),
    ("health", "hang_timeout_s", -1.0, r"\[health\] hang_timeout_s.*> 0"),
    ("device_recovery", "max_attempts", 0, r"\[device_recovery\] max_attempts.*>= 1"),
    ("device_recovery", "reopen_after", 0, r"\[device_recovery\] reopen_after.*>= 1"),
    ("device_recovery", "backoff_s", -0.1, r"\[device_recovery\] backoff_s.*>= 0"),
])
def test_a_setting_out_of_range_is_refused_naming_it(table: str, key: str, value: object, says: str) -> None:
    cfg = config.defaults()
    cfg[table][key] = value
    with pytest.raises(ValueError, match=says):
        Settings.from_config(cfg, device="CPU")


def test_an_override_out_of_range_is_refused_too() -> None:
    with pytest.raises(ValueError, match=r"max_tiles_inside.*>= 1; got 0"):
        Settings.from_config(config.defaults(), max_tiles_inside=0)


def test_a_memory_of_tiles_too_small_for_the_tiles_in_flight_is_refused() -> None:
    """remember_tiles at or under max_tiles_inside forgot tiles in flight: a resend of one was
    processed a second time and its sender told done before the ground had anything (a review of
    2026-12-04)."""
    with pytest.raises(ValueError, match=r"remember_tiles \(64\) must be more than \[limits\] max_tiles_inside \(64\)"):
        Settings.from_config(config.defaults(), remember_tiles=64)
    assert Settings.from_config(config.defaults(), remember_tiles=65).remember_tiles == 65


def test_the_shipped_defaults_and_the_edges_of_each_range_are_taken() -> None:
    cfg = config.defaults()
    Settings.from_config(cfg)
    cfg["vectorize"].update(connectivity=4, min_area_px=0, simplify_px=0, batch=1, batch_wait_ms=0)
    cfg["limits"]["max_tiles_inside"] = 1
    cfg["inference"]["infer_requests"] = 0
    settings = Settings.from_config(cfg)
    assert settings.vectorize["connectivity"] == 4 and settings.max_tiles_inside == 1


def test_serve_with_a_bad_config_exits_2_saying_why(tmp_path: Path) -> None:
    """What an operator sees: one line naming the setting, exit status 2, no traceback, nothing bound."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[vectorize]\nconnectivity = 6\n")
    proc = subprocess.run([sys.executable, "-m", "runtime", "serve", "--config", str(bad), "--device", "CPU",
                           "--tiles", f"ipc://{tmp_path}/t", "--results", f"ipc://{tmp_path}/r",
                           "--control", f"ipc://{tmp_path}/c", "--telemetry", f"ipc://{tmp_path}/m",
                           "--acks", f"ipc://{tmp_path}/a"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "[vectorize] connectivity" in proc.stderr and "[4, 8]" in proc.stderr
    assert "Traceback" not in proc.stderr and "ready" not in proc.stdout


def test_infer_checks_its_settings_as_serve_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`runtime infer` post-processes with the same [vectorize] table: a bad value is refused before
    the model or the image is read, not found on the first tile with a vessel."""
    from runtime.__main__ import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[vectorize]\nmin_area_px = -1\n")
    assert main(["infer", "--config", str(bad), "--model", str(REPO / "models/default"),
                 "--input", str(tmp_path / "none.tif"), "--output", str(tmp_path / "v.geojson")]) == 2
    assert "[vectorize] min_area_px must be an integer >= 0; got -1" in capsys.readouterr().err
    assert not (tmp_path / "v.geojson").exists()


def test_an_unknown_setting_in_the_config_is_a_clear_error_not_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.__main__ import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[vectorize]\nconectivity = 4\n")
    assert main(["infer", "--config", str(bad), "--model", str(REPO / "models/default"),
                 "--input", str(tmp_path / "none.tif"), "--output", str(tmp_path / "v.geojson")]) == 2
    assert "unknown setting 'conectivity'" in capsys.readouterr().err


@pytest.mark.parametrize(("key", "value", "highest"), [
    ("results_hwm", 2**31, 2**31 - 1),               # ZMQ_SNDHWM is a C int
    ("max_message_bytes", 2**63, 2**63 - 1),         # ZMQ_MAXMSGSIZE an int64
])
def test_a_limit_too_large_for_its_zeromq_option_is_refused_naming_it(key: str, value: int, highest: int) -> None:
    """Taken by Settings, such a limit failed only when serve set the socket option: an OverflowError
    traceback (exit status 1), not the setting named (status 2). The largest the option holds is taken."""
    cfg = config.defaults()
    cfg["limits"][key] = value
    with pytest.raises(ValueError, match=rf"\[limits\] {key} must be at most {highest}, .*; got {value}"):
        Settings.from_config(cfg, device="CPU")
    cfg["limits"][key] = highest
    assert getattr(Settings.from_config(cfg, device="CPU"), key) == highest
