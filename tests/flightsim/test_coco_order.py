"""A COCO source's samples do not depend on the order its JSON lists the images in: a seeded split
of them (search.dataset) takes sample indices, so another order would move chips between training
and test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio

from flightsim.sources import open_source


def test_the_same_images_listed_in_another_order_make_the_same_samples(tmp_path: Path) -> None:
    names = ["c.png", "a.png", "d.png", "b.png"]
    for k, name in enumerate(names):
        with rasterio.open(tmp_path / name, "w", driver="PNG", height=40, width=60, count=1, dtype="uint8") as dst:
            dst.write(np.full((1, 40, 60), k, np.uint8))
    images = [{"id": k + 1, "file_name": n, "height": 40, "width": 60} for k, n in enumerate(names)]
    # one ship on c.png, two on b.png: the truth travels with its image
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 20, 10],
                    "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]}] + [
        {"id": 2 + j, "image_id": 4, "category_id": 1, "iscrowd": 0, "bbox": [5 + 20 * j, 5, 10, 10],
         "segmentation": [[5 + 20 * j, 5, 15 + 20 * j, 5, 15 + 20 * j, 15, 5 + 20 * j, 15]]} for j in range(2)]
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "ship"}]}
    read = []
    for order in (images, images[::-1], [images[2], images[0], images[3], images[1]]):
        (tmp_path / "set.json").write_text(json.dumps({**coco, "images": order}))
        read.append([(s.name, len(s.vessels), int(s.image.max())) for s in open_source(f"coco:{tmp_path}")])
    assert read[0] == [("a", 0, 1), ("b", 2, 3), ("c", 1, 0), ("d", 0, 2)]
    assert read[1] == read[0] and read[2] == read[0]
