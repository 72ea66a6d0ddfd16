"""``python -m flightsim``: bad options and a link that fails are one ``error:`` line, never a
traceback or a silently substituted default (reviewer's defects 5, 7 and 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import flightsim.streamer
from flightsim.__main__ import main


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """A small three-band GeoTIFF: four 32-pixel tiles."""
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", height=64, width=64, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(1, 0, 4e5, 0, -1, 5e6)) as dst:
        dst.write(np.zeros((3, 64, 64), dtype=np.uint8))
    return path


@pytest.mark.parametrize("option", ["--window", "--tile-size"])
def test_zero_is_refused_not_replaced_by_the_default(option: str, scene: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 9: 0 is not "unset": argparse refuses it, saying what is valid."""
    with pytest.raises(SystemExit) as exit_:
        main(["stream", "--scene", str(scene), "--tiles", "tcp://127.0.0.1:1", option, "0"])
    assert exit_.value.code == 2
    assert f"argument {option}: must be an integer >= 1, got '0'" in capsys.readouterr().err


def test_an_endpoint_zeromq_cannot_use_is_an_error_line(scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 7: --tiles nonsense was a ZMQError traceback; since 2026-12-05 it says what an endpoint is."""
    assert main(["stream", "--scene", str(scene), "--tiles", "nonsense"]) == 2
    assert capsys.readouterr().err.startswith("error: --tiles 'nonsense' is not a ZeroMQ endpoint")


def test_no_runtime_listening_is_an_error_line(scene: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 7: nothing acknowledges (a LinkError) is an error naming the endpoint and what was
    sent and acknowledged (the wait for acks made short here)."""
    class QuickStreamer(flightsim.streamer.Streamer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, ack_timeout_s=0.3, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flightsim.streamer, "Streamer", QuickStreamer)
    endpoint = "tcp://127.0.0.1:1"
    assert main(["stream", "--scene", str(scene), "--tiles", endpoint, "--tile-size", "32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {endpoint}: no acknowledgement or other progress in 0.3 s"), err
    assert err.endswith("(sent 4 tiles, 0 acknowledged)"), err


def test_a_missing_config_file_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 5: --config naming no file was a FileNotFoundError traceback."""
    assert main(["generate", "--config", str(tmp_path / "none.toml"), "--seed", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --config {tmp_path / 'none.toml'}: No such file or directory"
