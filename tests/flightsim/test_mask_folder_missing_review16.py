"""Reviewed defect of flightsim/sources/masks.py: an hrsid-mini data set without its ``masks/`` folder
(HRSID-style chips whose masks live elsewhere) was refused with "its mask images/<stem>.png does not
exist (layout 'hrsid-mini')": a path beside the image that the documented layout never names. The
loader looks there only because it found no ``masks/`` folder; the message now says the layout and
that no ``masks/`` folder was found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from flightsim.sources import open_source


def _jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="JPEG", height=20, width=30, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 20, 30), np.uint8))


def test_a_missing_masks_folder_is_named(tmp_path: Path) -> None:
    _jpeg(tmp_path / "images" / "a.jpg")
    with pytest.raises(ValueError) as err:
        open_source(f"hrsid-mini:{tmp_path}")[0]
    said = str(err.value)
    assert "layout 'hrsid-mini': images/*.jpg with masks/<stem>.png" in said
    assert f"there is no masks/ folder ({tmp_path / 'masks'})" in said


def test_a_mask_missing_from_its_folder_names_the_layout_only(tmp_path: Path) -> None:
    _jpeg(tmp_path / "images" / "a.jpg")
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match=r"masks/a.png does not exist \(layout 'hrsid-mini': images/\*.jpg with "
                                         r"masks/<stem>.png\)$"):
        open_source(f"hrsid-mini:{tmp_path}")[0]
