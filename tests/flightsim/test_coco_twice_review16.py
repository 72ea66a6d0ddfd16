"""Reviewed defect of flightsim/sources/coco.py: one image file listed twice, by two COCO files under
the folder read (a test set's ``test.json`` beside a ``test_inshore.json`` that lists a subset of
its chips, as SSDD's official COCO release has) or twice in one file, became two samples: the chip
was streamed and scored twice and its ships counted twice in the truth (on 93 real SSDD test chips
with 20 of them listed again: 113 samples, 206 ships for 170), and the copies were named by path and
suffix (``images/000004.jpg``), which no ``--land-masks`` mask matched. It is now a ValueError naming
the image and the files, and how to read one of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from flightsim.sources import open_source


def _coco(names: list[str]) -> dict[str, Any]:
    images = [{"id": k + 1, "file_name": n, "height": 40, "width": 60} for k, n in enumerate(names)]
    annotations = [{"id": k + 1, "image_id": k + 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 20, 10],
                    "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]} for k in range(len(names))]
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "ship"}]}


def _layout(tmp_path: Path) -> Path:
    """images/a.png, images/b.png and annotations/ (empty), the usual COCO layout."""
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    for name in ("a.png", "b.png"):
        with rasterio.open(tmp_path / "images" / name, "w", driver="PNG", height=40, width=60, count=3,
                           dtype="uint8") as dst:
            dst.write(np.zeros((3, 40, 60), np.uint8))
    return tmp_path


def test_a_folder_whose_two_coco_files_list_one_image_is_refused(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    (root / "annotations" / "test.json").write_text(json.dumps(_coco(["a.png", "b.png"])))
    (root / "annotations" / "test_inshore.json").write_text(json.dumps(_coco(["b.png"])))
    with pytest.raises(ValueError, match=r"b\.png: listed by test\.json and test_inshore\.json.*counted twice"):
        open_source(f"coco:{root}")
    # each file on its own reads, every ship once
    source = open_source(f"coco:{root / 'annotations' / 'test.json'}")
    assert [s.name for s in source] == ["a", "b"]
    assert sum(len(s.vessels) for s in source) == 2


def test_one_image_listed_twice_in_one_file_is_refused(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    (root / "annotations" / "test.json").write_text(json.dumps(_coco(["a.png", "b.png", "a.png"])))
    with pytest.raises(ValueError, match=r"a\.png: listed twice by test\.json \(image ids 1 and 3\)"):
        open_source(f"coco:{root}")


def test_distinct_images_of_several_files_still_read(tmp_path: Path) -> None:
    root = _layout(tmp_path)
    (root / "annotations" / "one.json").write_text(json.dumps(_coco(["a.png"])))
    (root / "annotations" / "two.json").write_text(json.dumps(_coco(["b.png"])))
    source = open_source(f"coco:{root}")
    assert sorted(s.name for s in source) == ["a", "b"]
