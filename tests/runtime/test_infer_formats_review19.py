"""``runtime infer`` on the rasters real chip sets come as (PNG, JPEG: SSDD is JPEG), not only .npy and
GeoTIFF: read through GDAL as a pixel grid, their bands adapted by the rig's rule; an unreadable file
is a clear error. Real OpenVINO (the brightness model), real files written by rasterio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from runtime import offline
from tests.conftest import make_brightness_bundle

SEA, SHIP = 15, 250


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("review19formats") / "b"
    make_brightness_bundle(out, size=64)
    return out


def _scene(bands: int) -> np.ndarray:
    """A 100 x 90 scene with one vessel across the tile border at column 64 and one inside a tile."""
    pixels = np.full((bands, 100, 90), SEA, np.uint8)
    pixels[:, 20:26, 50:80] = SHIP
    pixels[:, 70:74, 10:22] = SHIP
    return pixels


def _write(path: Path, driver: str, pixels: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver=driver, height=pixels.shape[1], width=pixels.shape[2],
                       count=pixels.shape[0], dtype="uint8") as dst:
        dst.write(pixels)
    return path


def _infer(bundle: Path, path: Path) -> dict:
    return offline.infer_file(bundle, path, "CPU", {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8})


def test_a_grey_png_is_inferred_as_its_npy_twin(bundle: Path, tmp_path: Path) -> None:
    pixels = _scene(1)
    np.save(tmp_path / "s.npy", pixels)
    png = _infer(bundle, _write(tmp_path / "s.png", "PNG", pixels))
    npy = _infer(bundle, tmp_path / "s.npy")
    assert png["crs"] is None and png["features"] and png["features"] == npy["features"]
    assert "repeated" in png["bands"]["adaptation"]  # one grey band into the model's three, as the rig does
    assert {f["properties"]["units"] for f in png["features"]} == {"px"}


def test_an_rgb_jpeg_finds_its_vessels_in_pixels(bundle: Path, tmp_path: Path) -> None:
    collection = _infer(bundle, _write(tmp_path / "s.jpg", "JPEG", _scene(3)))
    lengths = sorted(round(f["properties"]["length_m"]) for f in collection["features"])
    assert lengths == [12, 30]  # lossy, but the vessel across the border comes back whole
    assert collection["crs"] is None


@pytest.mark.parametrize("name,content", [("x.jpg", b"not an image"), ("x.png", b"\x89PNG\r\n\x1a\n broken")])
def test_an_unreadable_image_is_a_clear_error(bundle: Path, tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{name}: not a readable image .*valid: a \.npy array or a raster"):
        _infer(bundle, tmp_path / name)
