"""Reviewed defects of the scene readers (review 21): COCO polygons with NaN or infinite coordinates
or written as [x, y] pairs, palette (indexed-colour) mask files, and a raster whose bands are of
mixed types. Every test writes its own small files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from PIL import Image

from flightsim.sources import CocoSource, open_source
from flightsim.sources.base import Georef, read_image
from flightsim.tiles import tile_scene


def _coco(tmp_path: Path, segmentation: Any, bbox: list[float] | None = None) -> Path:
    """A 20 x 30 black PNG with one annotation of ``segmentation``, and its COCO file."""
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "a.png")
    path = tmp_path / "a.json"
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": segmentation,
           "bbox": bbox or [1, 1, 3, 3]}
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
                                "annotations": [ann], "categories": [{"id": 1, "name": "ship"}]}))
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_coco_polygon_with_a_non_finite_coordinate_is_a_value_error_naming_the_file(
        tmp_path: Path, bad: float) -> None:
    # Python's json writes and reads NaN and Infinity; GEOS raised a bare GEOSException on them.
    path = _coco(tmp_path, [[2, 2, bad, 2, 8, 8, 2, 8]])
    with pytest.raises(ValueError, match=r"a\.json: annotation 1: a polygon's coordinates must be finite"):
        CocoSource(path)[0]


@pytest.mark.parametrize("points", [4, 5, 6])
def test_a_coco_polygon_of_xy_pairs_is_refused_whatever_its_length(tmp_path: Path, points: int) -> None:
    # [[x, y], ...] is not COCO: 4 pairs were skipped as "fewer than 3 points" (the vessel became its
    # bbox), 5 refused as an odd count, 6 read; each is the same mistake and gets the same answer.
    ring = [[2 + k, 2 + (k % 2) * 6] for k in range(points)]
    path = _coco(tmp_path, [ring])
    with pytest.raises(ValueError, match=r"a\.json: annotation 1: .*one flat list \[x1, y1, x2, y2, \.\.\.\]"):
        CocoSource(path)[0]


def test_a_flat_coco_polygon_still_reads_and_a_short_one_is_still_skipped(tmp_path: Path) -> None:
    path = _coco(tmp_path, [[2, 2, 12, 2, 12, 8, 2, 8], [1, 1, 3, 3]])
    s = CocoSource(path)[0]
    assert int(s.mask.sum()) == 60 and len(s.vessels) == 1
    assert any("1 polygon with fewer than 3 points skipped" in n for n in s.notes), s.notes


def _palette_mask(path: Path) -> None:
    """A palette PNG whose index 1 is green (4 x 3 px at rows 5-7) and index 2 red (8 x 3 px at rows 12-14)."""
    idx = np.zeros((20, 30), np.uint8)
    idx[5:8, 5:9] = 1
    idx[12:15, 12:20] = 2
    img = Image.fromarray(idx, mode="P")
    img.putpalette([0, 0, 0, 0, 255, 0, 255, 0, 0])
    img.save(path)


def test_a_palette_mask_is_read_by_its_colours_in_the_hrsid_official_layout(tmp_path: Path) -> None:
    # ship = red > 0: only the red pixels; the raw indices (1 and 2, both > 0) made the green ones ships too.
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(data / "b.png")
    _palette_mask(data / "b_instance_color_RGB.png")
    s = open_source(f"hrsid-official:{tmp_path}")[0]
    assert int(s.mask.sum()) == 24 and s.mask[12:15, 12:20].all() and len(s.vessels) == 1


def test_a_palette_mask_is_read_by_its_colours_in_the_hrsid_mini_layout(tmp_path: Path) -> None:
    # ship = green > 127: the palette's green pixels; the single index band was refused as having no green.
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    _palette_mask(tmp_path / "masks" / "a.png")
    s = open_source(f"hrsid-mini:{tmp_path}")[0]
    assert int(s.mask.sum()) == 12 and s.mask[5:8, 5:9].all() and len(s.vessels) == 1


def test_a_raster_with_bands_of_mixed_types_is_refused_naming_the_file(tmp_path: Path) -> None:
    # A VRT stacking a uint8 file and a float32 one: only band 1's type was checked, and reading the
    # pixels failed in rasterio ("more than one 'dtype' found") without the file's name.
    for name, dtype in (("u8.tif", "uint8"), ("f32.tif", "float32")):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", height=20, width=30, count=1, dtype=dtype) as dst:
            dst.write(np.ones((1, 20, 30), dtype))
    bands = "".join(f'<VRTRasterBand dataType="{t}" band="{i}"><SimpleSource><SourceFilename relativeToVRT="1">'
                    f"{f}</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand>"
                    for i, (t, f) in enumerate((("Byte", "u8.tif"), ("Float32", "f32.tif")), start=1))
    vrt = tmp_path / "stack.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="30" rasterYSize="20">{bands}</VRTDataset>')
    with pytest.raises(ValueError, match=r"stack\.vrt: bands of mixed types \['uint8', 'float32'\]"):
        read_image(vrt, Georef())
    with pytest.raises(ValueError, match=r"stack\.vrt: bands of mixed types"):
        next(tile_scene(vrt, 16))
    # runtime infer's reader too (runtime.offline.InputImage): it checked band 1 alone as well
    from runtime.offline import InputImage

    with pytest.raises(ValueError, match=r"stack\.vrt: bands of mixed types \['uint8', 'float32'\]"):
        InputImage(vrt)
