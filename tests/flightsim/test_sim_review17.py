"""Review of the payload simulator (2026-12-05): each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightsim.__main__ import main


def test_generate_overwrites_a_scene_left_broken_by_an_interrupted_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A scene.tif cut short (an interrupted generate, a full disk) made every later ``generate`` into
    that folder fail with a GDAL traceback: GDAL opens a GeoTIFF it is asked to overwrite."""
    out = tmp_path / "out"
    assert main(["generate", "--seed", "1", "--out", str(out), "--size", "64"]) == 0
    for name in ("scene.tif", "truth_mask.tif"):
        path = out / name
        path.write_bytes(path.read_bytes()[:200])
    capsys.readouterr()
    assert main(["generate", "--seed", "1", "--out", str(out), "--size", "64"]) == 0
    assert "vessels; scene:" in capsys.readouterr().out


@pytest.mark.parametrize("block", ["100", "0"])
def test_a_geotiff_block_gdal_refuses_is_a_config_error(block: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``[synthetic] geotiff_block_px = 100`` was a RasterBlockError traceback once the scene was drawn."""
    config = tmp_path / "c.toml"
    config.write_text(f"[synthetic]\ngeotiff_block_px = {block}\n")
    assert main(["generate", "--seed", "1", "--out", str(tmp_path / "out"), "--size", "300",
                 "--config", str(config)]) == 2
    assert "error: geotiff_block_px must be a positive multiple of 16" in capsys.readouterr().err


def test_a_gsd_too_coarse_for_any_ship_draws_a_scene_without_ships_at_once() -> None:
    """At 300 m per pixel no hull covers ``min_vessel_px``: every ship was tried
    ``placement_attempts`` times, each one rasterised, and a 256 px scene took minutes to place none
    (review, 2026-12-05)."""
    import time

    from flightsim.synthetic import generate_scene

    start = time.process_time()
    scene = generate_scene(1, size=256, gsd_m=300.0)
    assert scene.vessels == [] and time.process_time() - start < 20


@pytest.mark.parametrize(("key", "value", "message"), [
    ("cloud_probability", "x", r"\[synthetic\] cloud_probability must be a number \(finite\), like its default 0.4"),
    ("length_to_width", [0.0, 0.0], r"\[synthetic\] length_to_width must be two numbers > 0"),
    ("deck_colours", [[0.1, "a", 0.2]], r"\[synthetic\] deck_colours item item must be a number"),
    ("sensor_noise", [0.003, float("nan")], r"\[synthetic\] sensor_noise item must be a number \(finite\)"),
])
def test_a_synthetic_setting_of_the_wrong_kind_is_a_value_error_naming_it(key: str, value: object,
                                                                         message: str) -> None:
    """Review (2026-12-05): such values were a TypeError or ZeroDivisionError deep in the drawing."""
    from flightsim.synthetic import defaults, generate_scene

    cfg = defaults()
    cfg[key] = value
    with pytest.raises(ValueError, match=message):
        generate_scene(7, size=64, config=cfg)
