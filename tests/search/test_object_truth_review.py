"""Review: the search's object scores are hil's, on the truth hil scores against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from shapely.geometry import shape

from flightsim.sources import open_source
from hil.score import match_objects
from runtime.vectorize import vectorize
from search.dataset import prepare_data, read_split
from search.evaluate import object_scores


def _coco(root: Path, ships: list[list[float]], seed: int) -> None:
    """A COCO folder of one 64 px grey image with the polygon ``ships`` (x, y pixel coordinates)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(5, 25, (64, 64), dtype=np.uint8)  # unlike any other set's: no duplicate dropped
    root.mkdir(parents=True)
    (root / "ships.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "chip.png", "height": 64, "width": 64}],
        "categories": [{"id": 1, "name": "ship"}],
        "annotations": [{"id": k, "image_id": 1, "category_id": 1, "segmentation": [p], "iscrowd": 0}
                        for k, p in enumerate(ships, start=1)]}))
    Image.fromarray(np.stack([image] * 3, axis=-1)).save(root / "chip.png")


def test_moored_ships_are_two_vessels_to_the_search_as_to_hil(tmp_path: Path, tiny_cfg: dict[str, Any]) -> None:
    """search.evaluate.object_scores picks the flight model's threshold, smallest vessel and score
    cut by object F1 "matched as hil matches them", but took its truth vessels as the 8-connected
    components of the mask, where hil takes each annotated instance (sample.vessels). Two ships
    moored side by side (outlines sharing an edge: 26 of SSDD's 928 chips, 59 of its 2,040 ships)
    were one vessel to the search and two to hil: the same probability map scored F1 1.0 in the
    search and 0.667 in hil (one detection over both: one match, one ship missed)."""
    _coco(tmp_path / "train", [[10, 10, 40, 10, 40, 14, 10, 14]], seed=1)
    moored = [[10, 10, 40, 10, 40, 14, 10, 14], [10, 14, 40, 14, 40, 18, 10, 18]]  # rows 10-13 and 14-17
    _coco(tmp_path / "val", moored, seed=2)
    cfg = {**tiny_cfg, "data": {**tiny_cfg["data"], "source": [f"coco:{tmp_path / 'train'}", f"coco:{tmp_path / 'val'}"],
                                "source_roles": ["train", "val"], "source_weights": [1.0, 1.0]}}
    prepare_data(cfg, tmp_path / "data")
    [scene] = read_split(tmp_path / "data", "val")  # the validation sample as the search keeps it
    sample = open_source(f"coco:{tmp_path / 'val'}")[0].load()  # as hil reads it
    assert len(sample.vessels) == 2 and (scene.mask == sample.mask).all()

    prob = np.where(scene.mask > 0, 0.9, 0.05).astype(np.float32)  # one blob over both ships
    found = [shape(f["geometry"]) for f in vectorize(prob, 0.5, sample.transform, None, min_area_px=1)]
    hil = match_objects(found, sample.vessels, 0.5)
    search = object_scores([prob], [scene], [0.5], [1])[0]
    assert (search["precision"], search["recall"], search["f1"]) == (
        round(hil["precision"], 4), round(hil["recall"], 4), round(hil["f1"], 4)) == (1.0, 0.5, 0.6667)
