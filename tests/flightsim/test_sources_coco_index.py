"""Reviewed defects of flightsim/sources/coco.py: fields of the wrong JSON type (``annotations``
null, an ``image_id`` list, a ``file_name`` null, a string height) and a truncated compressed RLE
raised a raw TypeError or IndexError, or a message that contradicted itself; each is now a
ValueError naming the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import rasterio

from flightsim.sources import open_source
from flightsim.sources.coco import decode_rle_counts


def _base() -> dict[str, Any]:
    return {"images": [{"id": 1, "file_name": "a.png", "height": 40, "width": 60}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 20, 10],
                             "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]}],
            "categories": [{"id": 1, "name": "ship"}]}


def _open(tmp_path: Path, change: Callable[[dict[str, Any]], object]) -> Any:
    """Write a.png (40 x 60 RGB) and ann.json (``_base`` as ``change`` leaves it), open and read sample 0."""
    with rasterio.open(tmp_path / "a.png", "w", driver="PNG", height=40, width=60, count=3, dtype="uint8") as dst:
        dst.write(np.zeros((3, 40, 60), np.uint8))
    coco = _base()
    change(coco)
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    return open_source(f"coco:{tmp_path / 'ann.json'}")[0]


def test_the_well_formed_file_reads(tmp_path: Path) -> None:
    assert int(_open(tmp_path, lambda c: None).mask.sum()) == 200


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(annotations=None), r"ann.json: annotations is null; a COCO file's annotations is a list"),
    (lambda c: c.update(images={"1": {}}), r"ann.json: images is an object; a COCO file's images is a list"),
    (lambda c: c["annotations"][0].update(image_id=[1]),
     r"ann.json: annotation 1 has image_id \[1\] \(a list\); a COCO id is an integer"),
    (lambda c: c["annotations"][0].update(category_id={"id": 1}),
     r"ann.json: annotation 1 has category_id .* \(an object\); a COCO id is an integer"),
    (lambda c: c["images"][0].update(id=None), r"ann.json: image entry 1 has id None \(null\)"),
    (lambda c: c["images"][0].update(file_name=None),
     r"ann.json: image entry 1 \(id 1\) has file_name null; it must be the image's path"),
    (lambda c: c["images"][0].update(height="40", width="60"),
     r"ann.json: image 'a.png' has height '40' \(a string\); a COCO height is a number of pixels"),
    (lambda c: c["annotations"][0].update(segmentation={"size": [40, 60], "counts": "PP"}),
     r"ann.json: annotation 1: compressed RLE counts end in the middle of a count"),
    (lambda c: c["annotations"][0].update(segmentation={"size": [40, 60], "counts": "0 \x7f"}),
     r"ann.json: annotation 1: compressed RLE counts hold"),
])
def test_a_field_of_the_wrong_type_is_a_value_error_naming_file_and_field(
        tmp_path: Path, change: Callable[[dict[str, Any]], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _open(tmp_path, change)


def test_string_ids_some_exporters_write_still_read(tmp_path: Path) -> None:
    sample = _open(tmp_path, lambda c: (c["images"][0].update(id="1"), c["annotations"][0].update(image_id="1")))
    assert int(sample.mask.sum()) == 200


def test_truncated_rle_string_is_a_value_error() -> None:
    assert decode_rle_counts("52") == [5, 2]
    with pytest.raises(ValueError, match="truncated"):
        decode_rle_counts("5P")  # 'P' sets the continuation bit and nothing follows


def test_an_annotation_wholly_under_a_later_one_is_said_in_the_notes(tmp_path: Path) -> None:
    """A ship annotated twice (an exporter's duplicate; none in SSDD or sen2ships), or drawn inside another's outline, is one vessel in
    the truth, since a pixel is the later annotation's; it was left out without a word, against the
    module's rule that no annotation leaves the truth unsaid."""
    def twice(coco: dict[str, Any]) -> None:
        coco["annotations"].append({**coco["annotations"][0], "id": 2})  # the same outline again
        coco["annotations"].append({"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [40, 5, 15, 30],
                                    "segmentation": [[40, 5, 55, 5, 55, 35, 40, 35]]})  # a ship of its own

    sample = _open(tmp_path, twice)
    assert len(sample.vessels) == 2
    assert "truth: 1 annotation wholly under later ones (a duplicate, or an outline inside another's) not a " \
           "vessel of its own" in sample.notes
    (tmp_path / "once").mkdir()
    assert not any("wholly under" in note for note in _open(tmp_path / "once", lambda c: None).notes)
