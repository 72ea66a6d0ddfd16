"""Reviewed defect of flightsim/sources/masks.py: hrsid-mini given its ``images/`` folder as root
looked for the masks in ``images/`` instead of the sibling ``masks/``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from flightsim.sources import open_source


def _write(path: Path, pixels: np.ndarray, driver: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, h, w = pixels.shape
    with rasterio.open(path, "w", driver=driver, height=h, width=w, count=count, dtype="uint8") as dst:
        dst.write(pixels)


def _hrsid_mini(root: Path) -> np.ndarray:
    """``images/a.jpg`` and ``masks/a.png`` (ship = green > 127); returns the mask."""
    mask = np.zeros((40, 60), np.uint8)
    mask[5:9, 10:30] = 1
    _write(root / "images" / "a.jpg", np.stack([np.where(mask, 220, 30).astype(np.uint8)] * 3), "JPEG")
    colour = np.zeros((3, 40, 60), np.uint8)
    colour[1] = mask * 255
    _write(root / "masks" / "a.png", colour, "PNG")
    return mask


@pytest.mark.parametrize("sub", ["", "images"])
def test_hrsid_mini_root_may_be_the_data_set_or_its_image_folder(tmp_path: Path, sub: str) -> None:
    mask = _hrsid_mini(tmp_path)
    source = open_source(f"hrsid-mini:{tmp_path / sub}")
    assert source.mask_dir == tmp_path / "masks"
    np.testing.assert_array_equal(source[0].mask, mask)


def test_hrsid_official_given_its_data_folder_finds_the_masks_beside_the_images(tmp_path: Path) -> None:
    mask = np.zeros((40, 60), np.uint8)
    mask[5:9, 10:30] = 1
    _write(tmp_path / "data" / "P1.png", np.stack([mask * 200] * 3).astype(np.uint8), "PNG")
    _write(tmp_path / "data" / "P1_instance_color_RGB.png", np.stack([mask * 128] * 3).astype(np.uint8), "PNG")
    np.testing.assert_array_equal(open_source(f"hrsid-official:{tmp_path / 'data'}")[0].mask, mask)
