"""Reviewed defect of flightsim/sources/coco.py: a COCO set in a layout the loader does not read (HRSID's
``annotations/test2017.json`` with its chips in ``JPEGImages/``) was refused with "image ... has 1
annotations but does not exist", though the image exists, in a folder beside; the message did not say
where the coco loader looks for images. It now says which places those are, and to put the images there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from flightsim.sources import open_source


def test_images_outside_the_coco_layout_name_the_layouts_read(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    with rasterio.open(tmp_path / "JPEGImages" / "P0001.png", "w", driver="PNG", height=40, width=60, count=3,
                       dtype="uint8") as dst:
        dst.write(np.zeros((3, 40, 60), np.uint8))
    coco = {"images": [{"id": 1, "file_name": "P0001.png", "height": 40, "width": 60}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 20, 10]}],
            "categories": [{"id": 1, "name": "ship"}]}
    (tmp_path / "annotations" / "test2017.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError) as err:
        open_source(f"coco:{tmp_path}")
    said = str(err.value)
    assert "image 'P0001.png' (1 annotation) does not exist where the coco layout keeps images" in said
    assert "beside its JSON, or in images/ beside the JSON's folder" in said
    assert str(tmp_path / "images" / "P0001.png") in said and said.endswith("put or link the images there")
