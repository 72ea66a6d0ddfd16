"""Reviewed defect of flightsim/tiles.py: ``tile_scene`` (``python -m flightsim stream``) read the
file itself, so it sent the alpha band and a palette image's raw indices, under other band names
than ``hil run`` (``tile_sample`` of ``read_image``). Both paths now give identical tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from flightsim.sources.base import Georef, read_image
from flightsim.tiles import tile_grid, tile_sample, tile_scene

T = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)


def _rgba(path: Path, h: int, w: int) -> Path:
    """An RGBA GeoTIFF (the fourth band tagged alpha), random counts."""
    pixels = np.random.default_rng(0).integers(0, 255, (4, h, w), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=4, dtype="uint8", crs="EPSG:32631",
                       transform=T, photometric="RGB", alpha="YES") as dst:
        dst.write(pixels)
    return path


def _palette(path: Path, h: int, w: int) -> Path:
    """A palette GeoTIFF of four colours: indices 0..3 standing for black, red, green, blue."""
    indices = np.random.default_rng(1).integers(0, 4, (1, h, w), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=1, dtype="uint8", crs="EPSG:32631",
                       transform=T, photometric="palette") as dst:
        dst.write(indices)
        dst.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255), 2: (0, 255, 0, 255), 3: (0, 0, 255, 255)})
    return path


@pytest.mark.parametrize("make", [_rgba, _palette])
def test_stream_tiles_equal_the_hil_tiles(tmp_path: Path, make: object) -> None:
    path = make(tmp_path / "scene.tif", 70, 50)  # type: ignore[operator]
    streamed = list(tile_scene(path, 32))
    hil = list(tile_sample(read_image(path, Georef()), 32))
    # Every window of the grid is one tile, none lost or added.
    assert [t.window for t in streamed] == tile_grid(70, 50, 32) == [t.window for t in hil]
    for a, b in zip(streamed, hil):
        assert (a.tile_id, a.seq, a.bands, a.crs, a.transform) == (b.tile_id, b.seq, b.bands, b.crs, b.transform)
        np.testing.assert_array_equal(a.pixels, b.pixels)
    assert streamed[0].pixels.shape[0] == 3 and streamed[0].bands == ["red", "green", "blue"]


def test_stream_drops_the_alpha_band(tmp_path: Path) -> None:
    path = _rgba(tmp_path / "scene.tif", 64, 64)
    tile = next(tile_scene(path, 32))
    with rasterio.open(path) as src:
        rgb = src.read([1, 2, 3], window=((0, 32), (0, 32)))
    np.testing.assert_array_equal(tile.pixels, rgb)


def test_stream_sends_palette_colours_not_indices(tmp_path: Path) -> None:
    tile = next(tile_scene(_palette(tmp_path / "scene.tif", 64, 64), 32))
    assert tile.pixels.shape == (3, 32, 32) and set(np.unique(tile.pixels)) <= {0, 255}
    # Each pixel is one of the four colours of the table.
    colours = {tuple(c) for c in tile.pixels.reshape(3, -1).T.tolist()}
    assert colours <= {(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)} and len(colours) == 4


def test_stream_scene_id_and_errors(tmp_path: Path) -> None:
    path = _rgba(tmp_path / "scene.tif", 40, 40)
    assert {t.scene_id for t in tile_scene(path, 32)} == {"scene"}
    assert next(tile_scene(path, 32, scene_id="pass2")).tile_id == "pass2/r0c0"
    with pytest.raises(ValueError, match=r"missing.tif: no such image file"):
        next(tile_scene(tmp_path / "missing.tif", 32))
    floats = tmp_path / "floats.tif"
    with rasterio.open(floats, "w", driver="GTiff", height=8, width=8, count=1, dtype="float32") as dst:
        dst.write(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"floats.tif: pixels are float32"):
        next(tile_scene(floats, 32))
