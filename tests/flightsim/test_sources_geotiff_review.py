"""Review: a GeoTIFF truth mask is read onto its scene's grid only where it is on that grid, and its
nodata pixels are no vessel. Every test writes its own small GeoTIFFs through rasterio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from flightsim.sources import open_source

GRID = Affine(10, 0, 500000, 0, -10, 4000000)  # north-up, 10 m, UTM 32N


def _write(path: Path, band: np.ndarray, transform: Affine | None = GRID, crs: str | None = "EPSG:32632",
           nodata: int | None = None) -> Path:
    profile = dict(driver="GTiff", height=band.shape[0], width=band.shape[1], count=1, dtype="uint8",
                   crs=crs, transform=transform, nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(band, 1)
    return path


def _scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 40 x 60 scene with one ship at rows 2-5, columns 10-19, and its truth (on the scene's grid)."""
    img = np.full((40, 60), 20, np.uint8)
    img[2:6, 10:20] = 200
    return _write(tmp_path / "scene.tif", img), (img > 100).astype(np.uint8)


@pytest.mark.parametrize("kind", ["south-up", "shifted", "other-crs"])
def test_truth_mask_on_another_grid_is_refused(tmp_path: Path, kind: str) -> None:
    scene, truth = _scene(tmp_path)
    if kind == "south-up":  # the same ground stored bottom row first: read pixel for pixel, the ship is mirrored
        mask = _write(tmp_path / "m.tif", truth[::-1].copy(), Affine(10, 0, 500000, 0, 10, 4000000 - 400))
    elif kind == "shifted":
        mask = _write(tmp_path / "m.tif", truth, GRID * Affine.translation(0, 5))
    else:
        mask = _write(tmp_path / "m.tif", truth, crs="EPSG:32633")
    with pytest.raises(ValueError, match="m.tif: truth mask is .*scene's grid"):
        open_source(str(scene), truth=mask)[0]


@pytest.mark.parametrize("georef", ["same", "none"])
def test_truth_mask_on_the_scene_grid_or_without_georeference_is_read(tmp_path: Path, georef: str) -> None:
    scene, truth = _scene(tmp_path)
    if georef == "same":
        mask = _write(tmp_path / "m.tif", truth)
    else:
        mask = _write(tmp_path / "m.tif", truth, transform=None, crs=None)
    s = open_source(str(scene), truth=mask)[0]
    assert np.array_equal(s.mask, truth) and len(s.vessels) == 1


def test_truth_mask_nodata_is_no_vessel(tmp_path: Path) -> None:
    scene, truth = _scene(tmp_path)
    band = truth.copy()
    band[:, 50:] = 255  # outside the surveyed footprint: nodata, not a 400-pixel vessel
    s = open_source(str(scene), truth=_write(tmp_path / "m.tif", band, nodata=255))[0]
    assert np.array_equal(s.mask, truth)
    assert len(s.vessels) == 1
