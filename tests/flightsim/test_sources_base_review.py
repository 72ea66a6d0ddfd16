"""Reviewed defects of flightsim/sources/base.py: a partial georeference (``--gsd``, ``--origin`` or
``--crs`` alone) discarding the file's own transform and the data set's gsd; Concat names clashing
between two parts of one kind; a Subset of a synthetic source; the preview of a long strip. Every test
writes its own small files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from flightsim.sources import DEFAULTS, Concat, Georef, Subset, open_source

#: A 3 m UTM grid (zone 31 N), as a GeoTIFF carries it.
T = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0)


def _tif(path: Path, crs: str | None, h: int = 64, w: int = 64, transform: Affine = T) -> Path:
    """A three-band uint8 GeoTIFF on ``transform``, with ``crs`` or none."""
    pixels = np.random.default_rng(0).integers(0, 255, (3, h, w), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", height=h, width=w, count=3, dtype="uint8",
                       transform=transform, **({"crs": crs} if crs else {})) as dst:
        dst.write(pixels)
    return path


def _png(path: Path, h: int = 40, w: int = 60) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w, 3), 30, np.uint8)
    img[5:9, 10:30] = 220
    Image.fromarray(img).save(path)
    return path


# --- 1. Georef.resolve fills each missing part on its own ---------------------------------------------


def test_a_crs_alone_keeps_the_files_own_transform(tmp_path: Path) -> None:
    s = open_source(str(_tif(tmp_path / "geo.tif", "EPSG:32631")), georef=Georef(crs="EPSG:32631"))[0]
    assert s.transform == T and s.crs.to_epsg() == 32631


def test_a_gsd_alone_keeps_the_files_origin_and_crs(tmp_path: Path) -> None:
    s = open_source(str(_tif(tmp_path / "geo.tif", "EPSG:32631")), georef=Georef(gsd=2.0))[0]
    assert tuple(s.transform)[:6] == (2.0, 0.0, 500000.0, 0.0, -2.0, 4200000.0)
    assert s.crs.to_epsg() == 32631  # not the local plane: the file says where it is


def test_an_origin_alone_keeps_the_files_gsd_and_crs(tmp_path: Path) -> None:
    s = open_source(str(_tif(tmp_path / "geo.tif", "EPSG:32631")), georef=Georef(origin=(600000.0, 4100000.0)))[0]
    assert tuple(s.transform)[:6] == (3.0, 0.0, 600000.0, 0.0, -3.0, 4100000.0) and s.crs.to_epsg() == 32631


def test_a_crs_given_for_a_geotiff_without_one_keeps_its_geotransform(tmp_path: Path) -> None:
    path = _tif(tmp_path / "nocrs.tif", None)
    s = open_source(str(path), georef=Georef(crs="EPSG:32631"))[0]
    assert s.transform == T and s.crs.to_epsg() == 32631 and s.units == "m"
    # Without the user's CRS the geotransform's units are unknown: the pixel grid, as before.
    bare = open_source(str(path))[0]
    assert bare.transform == Affine.identity() and bare.crs is None and bare.units == "px"


def test_an_image_without_georeference_and_nothing_given_stays_on_the_pixel_grid(tmp_path: Path) -> None:
    s = open_source(str(_png(tmp_path / "a.png")))[0]
    assert s.transform == Affine.identity() and s.crs is None
    g = open_source(str(_png(tmp_path / "a.png")), georef=Georef(gsd=0.5, origin=(10.0, 20.0)))[0]
    assert tuple(g.transform)[:6] == (0.5, 0.0, 10.0, 0.0, -0.5, 20.0) and g.units == "m"


def test_dota_gsd_line_survives_a_crs_given_alone(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "P1.png")
    (tmp_path / "labelTxt").mkdir()
    (tmp_path / "labelTxt" / "P1.txt").write_text("gsd:0.5\n10 5 30 5 30 9 10 9 ship 0\n")
    s = open_source(f"dota:{tmp_path}", georef=Georef(crs="EPSG:32631"))[0]
    assert tuple(s.transform)[:6] == (0.5, 0.0, 0.0, 0.0, -0.5, 0.0) and s.crs.to_epsg() == 32631
    assert any("gsd 0.5 m from P1.txt" in n for n in s.notes)
    # The user's --gsd still wins over the label's.
    assert open_source(f"dota:{tmp_path}", georef=Georef(gsd=2.0))[0].transform.a == 2.0


def test_dota_gsd_that_is_not_positive_names_the_file(tmp_path: Path) -> None:
    _png(tmp_path / "images" / "P1.png")
    (tmp_path / "labelTxt").mkdir()
    (tmp_path / "labelTxt" / "P1.txt").write_text("gsd:0\n10 5 30 5 30 9 10 9 ship 0\n")
    with pytest.raises(ValueError, match=r"P1.txt:1: gsd '0' must be a positive number"):
        open_source(f"dota:{tmp_path}")[0]


def test_hrsc_img_resolution_survives_an_origin_given_alone(tmp_path: Path) -> None:
    _png(tmp_path / "AllImages" / "100000001.png")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "100000001.xml").write_text(
        "<HRSC_Image><Img_ID>100000001</Img_ID><Img_FileFmt>png</Img_FileFmt><Img_Resolution>1.5</Img_Resolution>"
        "<HRSC_Objects><HRSC_Object><mbox_cx>20</mbox_cx><mbox_cy>7</mbox_cy><mbox_w>20</mbox_w><mbox_h>4</mbox_h>"
        "<mbox_ang>0</mbox_ang></HRSC_Object></HRSC_Objects></HRSC_Image>")
    s = open_source(f"hrsc2016:{tmp_path}", georef=Georef(origin=(100.0, 200.0)))[0]
    assert tuple(s.transform)[:6] == (1.5, 0.0, 100.0, 0.0, -1.5, 200.0) and s.units == "m"
    assert any("Img_Resolution in 100000001.xml" in n for n in s.notes)


def _sen2ships(root: Path) -> Path:
    _png(root / "port" / "x_True_color.png")
    (root / "port" / "port_coco.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "x_True_color.png", "height": 40, "width": 60}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [10, 5, 20, 4],
                         "segmentation": [[10, 5, 30, 5, 30, 9, 10, 9]]}],
        "categories": [{"id": 1, "name": "ship"}]}))
    return root


def test_sen2ships_default_gsd_survives_a_crs_given_alone(tmp_path: Path) -> None:
    root = _sen2ships(tmp_path)
    gsd = DEFAULTS["sources"]["sen2ships_gsd_m"]
    plain = open_source(f"sen2ships:{root}")[0]
    assert plain.transform.a == gsd and plain.units == "m"
    s = open_source(f"sen2ships:{root}", georef=Georef(crs="EPSG:32631"))[0]
    assert tuple(s.transform)[:6] == (gsd, 0.0, 0.0, 0.0, -gsd, 0.0) and s.crs.to_epsg() == 32631
    assert open_source(f"sen2ships:{root}", georef=Georef(gsd=3.0))[0].transform.a == 3.0


# --- 3. Concat keeps names unique ----------------------------------------------------------------------


def _coco_set(folder: Path) -> str:
    _png(folder / "0001.png")
    (folder / "ann.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "0001.png"}], "annotations": [],
                                                 "categories": [{"id": 1, "name": "ship"}]}))
    return f"coco:{folder / 'ann.json'}"


def test_concat_of_two_parts_of_one_kind_gives_unique_names(tmp_path: Path) -> None:
    source = open_source([_coco_set(tmp_path / "a"), _coco_set(tmp_path / "b")])
    names = [s.name for s in source]
    assert len(set(names)) == 2 and names == ["coco.1/0001", "coco.2/0001"]
    assert source.prefixes == ["coco.1", "coco.2"]


def test_concat_of_distinct_kinds_keeps_the_kind_slash_stem_names(tmp_path: Path) -> None:
    """Saved split files record these names (``coco/000633``): they must not change."""
    source = open_source([_coco_set(tmp_path / "a"), "synthetic:seed=3,size=64"])
    assert [s.name for s in source] == ["coco/0001", "synthetic/synthetic-3"]


# --- 4. Subset of a synthetic source -------------------------------------------------------------------


def test_subset_of_a_synthetic_source(tmp_path: Path) -> None:
    source = open_source("synthetic:seeds=3-5,size=64")
    subset = Subset(source, [2, 0], role="val")
    assert [s.name for s in subset] == ["synthetic-5", "synthetic-3"]
    assert subset.describe()["val"] == [2, 0] and subset.kind == "synthetic"
    with pytest.raises(ValueError, match=r"sample indices \[7\] are outside 0..2 of synthetic"):
        Subset(source, [7])


def test_subset_of_a_concat_with_a_synthetic_part(tmp_path: Path) -> None:
    source = open_source(["synthetic:seed=3,size=64", _coco_set(tmp_path / "a")])
    assert isinstance(source, Concat)
    assert [s.name for s in Subset(source, [1, 0])] == ["coco/0001", "synthetic/synthetic-3"]


# --- 6. The preview of a long strip --------------------------------------------------------------------


@pytest.mark.parametrize("side", [1024, 256])
def test_preview_of_a_strip_far_longer_than_wide(tmp_path: Path, side: int) -> None:
    s = open_source(str(_tif(tmp_path / "strip.tif", "EPSG:32631", h=6, w=4000)))[0]
    rgb, factor = s.preview(side)
    assert factor == -(-4000 // side) and rgb.shape == (1, 4000 // factor, 3)


def test_a_crs_alone_for_an_image_without_georeference_needs_a_gsd(tmp_path: Path) -> None:
    """Review (2026-12-05): ``--crs`` alone on a PNG put it on a grid of 1 map unit per pixel, and its
    vessels came down in "m" that were pixel counts; with ``--gsd`` it is placed as asked."""
    with pytest.raises(ValueError, match=r"--crs EPSG:32631 on an image without georeference needs --gsd"):
        open_source(str(_png(tmp_path / "a.png")), georef=Georef(crs="EPSG:32631"))[0]
    s = open_source(str(_png(tmp_path / "a.png")), georef=Georef(gsd=2.0, crs="EPSG:32631"))[0]
    assert s.transform.a == 2.0 and s.crs.to_epsg() == 32631 and s.units == "m"
