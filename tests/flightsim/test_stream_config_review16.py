"""Review: ``python -m flightsim stream --config`` took ``[stream] tile_size`` and ``window`` unchecked.

A float tile size was a TypeError traceback from the tiler, a string one from the comparison, and
``true`` was taken for 1 (a scene sent as 1-pixel tiles); ``window = 2.5`` let two tiles out. The
command-line options refuse all of these (``positive_int``); the same values from the file are now
an ``error:`` line naming the setting, before anything is sent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import flightsim.streamer
from flightsim.__main__ import main


@pytest.mark.parametrize("setting", ["tile_size = 64.5", 'tile_size = "64"', "tile_size = true",
                                     "window = 2.5", "window = true", 'window = "16"'])
def test_a_stream_setting_of_the_wrong_type_is_an_error_line(setting: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    class QuickStreamer(flightsim.streamer.Streamer):  # nothing listens: a stream that starts fails fast
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, ack_timeout_s=0.3, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flightsim.streamer, "Streamer", QuickStreamer)
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=8, width=8, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=Affine(1, 0, 4e5, 0, -1, 5e6)) as dst:
        dst.write(np.zeros((3, 8, 8), dtype=np.uint8))
    config = tmp_path / "stream.toml"
    config.write_text(f"[stream]\n{setting}\n")
    key, _, value = setting.partition(" = ")
    assert main(["stream", "--config", str(config), "--scene", str(scene), "--tiles", "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    shown = {"true": "True", '"64"': "'64'", '"16"': "'16'"}.get(value, value)
    assert err == f"error: [stream] {key} must be an integer >= 1; got {shown}", err
