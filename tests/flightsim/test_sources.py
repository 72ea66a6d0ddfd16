"""Every source format on small files the tests write, malformed files, and the real sets if present."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from flightsim.sources import (AirbusSource, CocoSource, DotaSource, Georef, HRSC2016Source, MaskFolderSource,
                               adapt_bands, open_source, parse_spec)
from flightsim.sources.airbus import decode_airbus_rle, encode_airbus_rle
from flightsim.sources.coco import decode_rle, decode_rle_counts, encode_rle

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _write(path: Path, pixels: np.ndarray, driver: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, h, w = pixels.shape
    with rasterio.open(path, "w", driver=driver, height=h, width=w, count=count, dtype=pixels.dtype.name) as dst:
        dst.write(pixels)
    return path


def _scene(h: int = 40, w: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A dark picture with two bright ships; returns the (3, h, w) image and the mask."""
    mask = np.zeros((h, w), np.uint8)
    mask[5:9, 10:30] = 1
    mask[25:35, 40:44] = 1
    img = np.where(mask, 220, 30).astype(np.uint8)
    return np.stack([img] * 3), mask


def _compress(counts: list[int]) -> str:
    """pycocotools' rleToString, written from its C source, to check the decoder against."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_coco_rle_round_trip_is_column_major() -> None:
    mask = np.zeros((3, 4), np.uint8)
    mask[0, 1] = mask[1, 1] = mask[2, 3] = 1
    rle = encode_rle(mask)
    # Column-major: column 0 (3 px) background, column 1 rows 0-1 vessel, ...
    assert rle["counts"] == [3, 2, 6, 1]
    np.testing.assert_array_equal(decode_rle(rle), mask)
    assert decode_rle_counts(_compress(rle["counts"])) == rle["counts"]
    np.testing.assert_array_equal(decode_rle({"size": [3, 4], "counts": _compress(rle["counts"])}), mask)


def test_airbus_rle_round_trip() -> None:
    mask = np.zeros((4, 3), np.uint8)
    mask[:, 0] = 1  # the first column: pixels 1..4
    assert encode_airbus_rle(mask) == "1 4"
    mask[1:3, 2] = 1
    np.testing.assert_array_equal(decode_airbus_rle(encode_airbus_rle(mask), (4, 3)), mask)
    with pytest.raises(ValueError, match="outside"):
        decode_airbus_rle("10 5", (3, 3))


def test_hrsid_mini_layout(tmp_path: Path) -> None:
    img, mask = _scene()
    _write(tmp_path / "images" / "a.jpg", img, "JPEG")
    colour = np.zeros((3, *mask.shape), np.uint8)
    colour[1] = mask * 255
    _write(tmp_path / "masks" / "a.png", colour, "PNG")
    source = open_source(f"hrsid-mini:{tmp_path}")
    assert isinstance(source, MaskFolderSource) and len(source) == 1
    s = source[0]
    assert s.image.shape == (3, 40, 60) and s.units == "px" and s.crs is None
    np.testing.assert_array_equal(s.mask, mask)
    assert len(s.vessels) == 2 and sorted(round(v.area) for v in s.vessels) == [40, 80]


def test_hrsid_official_layout_and_a_missing_mask(tmp_path: Path) -> None:
    img, mask = _scene()
    _write(tmp_path / "data" / "P1.png", img, "PNG")
    colour = np.zeros((3, *mask.shape), np.uint8)
    colour[0] = mask * 128
    _write(tmp_path / "data" / "P1_instance_color_RGB.png", colour, "PNG")
    _write(tmp_path / "data" / "P1_instance_id_RGB.png", colour, "PNG")
    source = open_source(f"hrsid-official:{tmp_path}")
    assert len(source) == 1  # the annotation PNGs are not images
    np.testing.assert_array_equal(source[0].mask, mask)
    _write(tmp_path / "data" / "P2.png", img, "PNG")
    with pytest.raises(ValueError, match=r"P2.png: its mask .*P2_instance_color_RGB.png does not exist"):
        open_source(f"hrsid-official:{tmp_path}")[1]


def test_coco_rle_and_polygons_with_rgba_and_gsd(tmp_path: Path) -> None:
    img, mask = _scene()
    rgba = np.concatenate([img, np.full((1, *mask.shape), 255, np.uint8)])
    png = tmp_path / "port" / "x_True_color.png"
    path = _write(png, rgba, "PNG")
    with rasterio.open(path, "r+"):
        pass
    second = np.zeros_like(mask)
    second[25:35, 40:44] = 1
    first = mask - second
    coco = {"images": [{"id": 1, "file_name": "x_NDWI.png", "height": 40, "width": 60},
                       {"id": 2, "file_name": png.name, "height": 40, "width": 60}],
            "categories": [{"id": 1, "name": "vessel"}],
            "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "segmentation": encode_rle(first)},
                            {"id": 2, "image_id": 2, "category_id": 1,
                             "segmentation": [[40, 25, 44, 25, 44, 35, 40, 35]]}]}
    (tmp_path / "port" / "x_coco.json").write_text(json.dumps(coco))
    source = open_source(f"sen2ships:{tmp_path}")
    assert len(source) == 1 and source.skipped and "x_NDWI.png" in source.skipped[0]
    s = source[0]
    assert s.image.shape == (3, 40, 60) and any("alpha band dropped" in n for n in s.notes)
    np.testing.assert_array_equal(s.mask, mask)
    assert len(s.vessels) == 2 and s.units == "m" and s.transform.a == 10.0
    assert sorted(round(v.area) for v in s.vessels) == [4000, 8000]  # m^2 at 10 m per pixel
    # Malformed: runs that do not cover the image.
    coco["annotations"][0]["segmentation"] = {"size": [40, 60], "counts": [5, 3]}
    bad = tmp_path / "bad" / "b.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps(coco))
    (bad.parent / png.name).write_bytes(png.read_bytes())
    with pytest.raises(ValueError, match=r"b.json: annotation 1: RLE runs add up to 8 pixels"):
        CocoSource(bad)[0]
    (tmp_path / "notjson.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"notjson.json: not JSON"):
        CocoSource(tmp_path / "notjson.json")


def _hrsc_xml(objects: str, name: str = "100000001") -> str:
    return (f"<HRSC_Image><Img_ID>{name}</Img_ID><Img_FileName>{name}</Img_FileName><Img_FileFmt>bmp</Img_FileFmt>"
            f"<Img_SizeWidth>60</Img_SizeWidth><Img_SizeHeight>40</Img_SizeHeight><Img_Resolution>1.5</Img_Resolution>"
            f"<HRSC_Objects>{objects}</HRSC_Objects></HRSC_Image>")


def test_hrsc2016_layout(tmp_path: Path) -> None:
    img, mask = _scene()
    _write(tmp_path / "AllImages" / "100000001.bmp", img, "BMP")
    obj = ("<HRSC_Object><Object_ID>1</Object_ID><mbox_cx>20</mbox_cx><mbox_cy>7</mbox_cy><mbox_w>20</mbox_w>"
           "<mbox_h>4</mbox_h><mbox_ang>0</mbox_ang></HRSC_Object>"
           "<HRSC_Object><Object_ID>2</Object_ID><mbox_cx>42</mbox_cx><mbox_cy>30</mbox_cy><mbox_w>10</mbox_w>"
           "<mbox_h>4</mbox_h><mbox_ang>1.5707963</mbox_ang></HRSC_Object>")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "100000001.xml").write_text(_hrsc_xml(obj))
    seg = np.zeros((3, *mask.shape), np.uint8)
    seg[2] = mask * 200
    _write(tmp_path / "Segmentations" / "100000001.png", seg, "PNG")
    s = HRSC2016Source(tmp_path)[0]
    np.testing.assert_array_equal(s.mask, mask)
    assert s.units == "m" and s.transform.a == 1.5  # Img_Resolution, no --gsd
    lengths = sorted(round(max(np.ptp(np.asarray(v.exterior.xy), axis=1))) for v in s.vessels)
    assert lengths == [15, 30] and any("Segmentations" not in n and "100000001.png" in n for n in s.notes)
    # Without the segmentation the mask comes from the boxes, and equals it here.
    (tmp_path / "Segmentations" / "100000001.png").unlink()
    np.testing.assert_array_equal(HRSC2016Source(tmp_path)[0].mask, mask)
    (tmp_path / "Annotations" / "100000001.xml").write_text(_hrsc_xml(obj.replace("<mbox_w>20</mbox_w>", "")))
    with pytest.raises(ValueError, match=r"100000001.xml: object 0 lacks a numeric mbox"):
        HRSC2016Source(tmp_path)[0]
    (tmp_path / "Annotations" / "100000001.xml").write_text("<HRSC_Image><unclosed>")
    with pytest.raises(ValueError, match=r"100000001.xml: not XML"):
        HRSC2016Source(tmp_path)[0]


def test_dota_layout(tmp_path: Path) -> None:
    img, mask = _scene()
    _write(tmp_path / "images" / "P1.png", img, "PNG")
    (tmp_path / "labelTxt").mkdir()
    (tmp_path / "labelTxt" / "P1.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.5\n10 5 30 5 30 9 10 9 ship 0\n40 25 44 25 44 35 40 35 ship 1\n"
        "0 0 5 0 5 5 0 5 harbor 0\n")
    s = DotaSource(tmp_path)[0]
    np.testing.assert_array_equal(s.mask, mask)
    assert len(s.vessels) == 2 and s.transform.a == 0.5 and s.units == "m"
    (tmp_path / "labelTxt" / "P1.txt").write_text("10 5 30 5 30 ship 0\n")
    with pytest.raises(ValueError, match=r"P1.txt:1: expected 'x1 y1"):
        DotaSource(tmp_path)[0]


def test_airbus_layout(tmp_path: Path) -> None:
    img, mask = _scene()
    _write(tmp_path / "train_v2" / "a.jpg", img, "JPEG")
    _write(tmp_path / "train_v2" / "empty.jpg", img, "JPEG")
    second = np.zeros_like(mask)
    second[25:35, 40:44] = 1
    with open(tmp_path / "train_ship_segmentations_v2.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageId", "EncodedPixels"])
        w.writerow(["a.jpg", encode_airbus_rle(mask - second)])
        w.writerow(["a.jpg", encode_airbus_rle(second)])
        w.writerow(["empty.jpg", ""])
    source = AirbusSource(tmp_path)
    assert len(source) == 2
    np.testing.assert_array_equal(source[0].mask, mask)
    assert len(source[0].vessels) == 2 and not source[1].mask.any() and source[1].vessels == []
    (tmp_path / "train_ship_segmentations_v2.csv").write_text("ImageId,EncodedPixels\na.jpg,1 2 3\n")
    with pytest.raises(ValueError, match=r"train_ship_segmentations_v2.csv: a.jpg ship 1: .*odd number"):
        AirbusSource(tmp_path)[0]
    (tmp_path / "train_ship_segmentations_v2.csv").write_text("Image,Pixels\n")
    with pytest.raises(ValueError, match=r"train_ship_segmentations_v2.csv: columns are"):
        AirbusSource(tmp_path)


def test_geotiff_georef_and_spec_errors(tmp_path: Path) -> None:
    img, mask = _scene()
    tif = _write(tmp_path / "plain.tif", img, "GTiff")
    s = open_source(str(tif))[0]
    assert s.units == "px" and s.crs is None
    g = open_source(str(tif), georef=Georef(gsd=2.0, origin=(500000.0, 4000000.0), crs="EPSG:32631"))[0]
    assert g.units == "m" and g.transform == Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0)
    assert g.read((0, 0, 10, 10)).shape == (3, 10, 10)
    assert parse_spec("synthetic") == ("synthetic", "")
    with pytest.raises(ValueError, match=r"unknown source 'nope'; valid: \['airbus'"):
        open_source("nope:/x")
    with pytest.raises(ValueError, match=r"crs 'EPSG:99999999' not understood"):
        Georef(crs="EPSG:99999999")
    with pytest.raises(ValueError, match="--truth is for a GeoTIFF"):
        open_source(f"dota:{tmp_path}", truth=tif)


def test_band_adaptation_rules() -> None:
    rgb = ["red", "green", "blue"]
    assert adapt_bands(rgb, rgb)[0] is None
    assert adapt_bands(["band1"], rgb)[0] == [0, 0, 0]
    assert adapt_bands(["blue", "green", "red", "nir"], rgb)[0] == [2, 1, 0]
    assert adapt_bands(["a", "b"], rgb, select=[2, 2, 1])[0] == [1, 1, 0]
    with pytest.raises(ValueError, match="give --bands with 3"):
        adapt_bands(["a", "b"], rgb)
    with pytest.raises(ValueError, match=r"valid source bands are 1..2"):
        adapt_bands(["a", "b"], rgb, select=[1, 2, 3])
    assert "rejects" in adapt_bands(["a", "b"], rgb, strict=False)[1]


def test_synthetic_source_modes() -> None:
    source = open_source("synthetic:seeds=3-4,size=128,mode=sar")
    assert len(source) == 2
    s = source[0]
    assert s.image.shape == (3, 128, 128) and s.bands == ["amplitude"] * 3
    assert (s.image[0] == s.image[1]).all() and s.units == "m"
    with pytest.raises(ValueError, match="unknown synthetic option 'colour'"):
        open_source("synthetic:colour=red")


@pytest.mark.skipif(not (DATA / "sen2ships").is_dir(), reason="no ../shared/data beside the clone")
def test_real_sets_load() -> None:
    """The real sets here: each COCO annotation is one vessel; hrsid masks are binary and non-empty."""
    coco = open_source(f"sen2ships:{DATA / 'sen2ships'}")
    for path, _, anns in coco.items:
        s = coco[[i for i, (p, _, _) in enumerate(coco.items) if p == path][0]]
        assert len(s.vessels) == len(anns) and s.image.shape[0] == 3
    hrsid = open_source(f"hrsid-mini:{DATA / 'hrsid-mini'}", limit=2)
    assert all(s.mask.any() and s.image.shape == (3, 800, 800) for s in hrsid)
