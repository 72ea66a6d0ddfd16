"""The ground's latency figures are over the tiles the runtime's are over: the tiles processed.

A rejected tile (a bad checksum, a short pixel frame) is answered at once, without inference; counted
in ``latency_ms`` it pulled the ground's figure under the runtime's own (``runtime_latency_ms``, over
the tiles processed only), a tile's time from send to result shorter than its time inside the runtime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import hil
from tests.conftest import make_brightness_bundle


@pytest.fixture(scope="module")
def bundle64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b") / "bright64"
    make_brightness_bundle(out, size=64)
    return out


def _scene(path: Path) -> Path:
    """A 256 x 256 scene (16 tiles of 64 px) with a ship in every tile."""
    pixels = np.full((3, 256, 256), 20, np.uint8)
    for r in range(10, 256, 64):
        for c in range(20, 256, 64):
            pixels[:, r:r + 6, c:c + 20] = 240
    with rasterio.open(path, "w", driver="GTiff", height=256, width=256, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=Affine(3.0, 0, 500000.0, 0, -3.0, 4000000.0)) as dst:
        dst.write(pixels)
    return path


def test_ground_latency_is_over_the_processed_tiles(tmp_path: Path, bundle64: Path) -> None:
    """Each processed tile's time at the ground (send to result) holds its time in the runtime, so over
    the same tiles every order statistic of the ground's is at least the runtime's."""
    r = hil.run(_scene(tmp_path / "scene.tif"), bundle64, tmp_path / "out", faults="bad_checksum=0.5,seed=2").report
    assert r["tiles_rejected"] > 0 and r["tiles_processed"] > 0  # both kinds of answer in the run
    ground, runtime = r["latency_ms"], r["runtime_latency_ms"]
    for key in ("p50", "mean", "max"):
        assert ground[key] >= runtime[key], (key, ground, runtime)
