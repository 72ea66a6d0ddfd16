"""Review: hrsid-official's truth vessels are its annotated instances, not the mask's connected parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flightsim.sources import open_source

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
OFFICIAL = DATA / "hrsid-official"


@pytest.mark.skipif(not (OFFICIAL / "data").is_dir(), reason="hrsid-official not present")
def test_hrsid_official_touching_ships_stay_separate_vessels() -> None:
    source = open_source(f"hrsid-official:{OFFICIAL}")
    for sample in source:
        ids = np.asarray(Image.open(OFFICIAL / "data" / f"{sample.name}_instance_id_RGB.png").convert("RGB"))
        colours = np.unique(ids.reshape(-1, 3), axis=0)
        instances = sum(1 for c in colours if c.any())  # (0, 0, 0) is the background
        # Each instance colour of these files is one solid ship inside the semantic mask, and P0094,
        # P0119 and P0123 hold ships whose outlines touch: one vessel each, not one per touching group.
        assert len(sample.vessels) == instances, sample.name


def test_coco_refuses_a_jpeg_whose_exif_turns_it(tmp_path: Path) -> None:
    """A JPEG with EXIF orientation 3 (180 degrees) is shown turned by annotation tools (LabelMe, CVAT)
    but read as stored by GDAL: its polygon would silently lie on the opposite corner."""
    import json

    pixels = np.full((20, 40, 3), 20, np.uint8)
    pixels[15:18, 30:37] = 255  # the ship as stored; the viewer shows it at rows 2-4, columns 3-9
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(pixels).save(tmp_path / "a.jpg", exif=exif, quality=95)
    seen = np.asarray(__import__("PIL.ImageOps", fromlist=["x"]).exif_transpose(Image.open(tmp_path / "a.jpg")))
    assert seen[3, 5, 0] > 200  # what the annotator saw and outlined
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 40}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": [[3, 2, 10, 2, 10, 5, 3, 5]], "bbox": [3, 2, 7, 3]}],
            "categories": [{"id": 1, "name": "ship"}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    source = open_source(f"coco:{tmp_path / 'a.json'}")
    with pytest.raises(ValueError, match="EXIF orientation 3"):
        source[0]
