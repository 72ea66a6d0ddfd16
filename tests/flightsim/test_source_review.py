"""Reviewed defects of the COCO, image and GeoJSON readers: box-only and degenerate COCO truth,
clashing sample names, palette PNGs, GeoJSON truth in another CRS, misleading COCO errors and
COCO categories. Every test writes its own small files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping

from flightsim.sources import CocoSource, open_source
from flightsim.tiles import tile_sample

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _image(path: Path, h: int = 60, w: int = 80) -> Path:
    """A dark grey PNG (or JPEG, by suffix) with one bright ship at rows 20-29, columns 10-39."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((h, w), 30, np.uint8)
    img[20:30, 10:40] = 230
    Image.fromarray(img).save(path)
    return path


def _coco(path: Path, images: list[dict[str, Any]], annotations: list[dict[str, Any]],
          categories: list[dict[str, Any]] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": categories or [{"id": 1, "name": "ship"}]}))
    return path


def _ann(i: int, **kw: Any) -> dict[str, Any]:
    return {"id": i, "image_id": 1, "category_id": 1, "iscrowd": 0, **kw}


# --- 1. Annotations without pixels ---------------------------------------------------------------------


@pytest.mark.parametrize("seg", ["missing", "empty"])
def test_coco_box_only_annotation_becomes_its_bbox(tmp_path: Path, seg: str) -> None:
    _image(tmp_path / "a.png")
    ann = _ann(1, bbox=[10, 20, 30, 10])
    if seg == "empty":
        ann["segmentation"] = []
    _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png", "height": 60, "width": 80}], [ann])
    s = CocoSource(tmp_path / "a.json")[0]
    assert int(s.mask.sum()) == 300 and s.mask[20:30, 10:40].all()
    assert len(s.vessels) == 1 and s.vessels[0].bounds == (10.0, 20.0, 40.0, 30.0)
    assert any("1 annotation without segmentation" in n and "bbox" in n for n in s.notes), s.notes


def test_coco_box_only_without_bbox_says_so(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png"}], [_ann(7, segmentation=[])])
    with pytest.raises(ValueError, match=r"annotation 7: no segmentation and no bbox"):
        CocoSource(tmp_path / "a.json")[0]


def test_coco_thin_polygon_is_kept(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    # 0.4 px tall, between pixel centres: no centre inside.
    thin = [[10.1, 20.55, 39.9, 20.55, 39.9, 20.95, 10.1, 20.95]]
    _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png"}],
          [_ann(1, segmentation=thin), _ann(2, segmentation=[[50, 40, 60, 40, 60, 50, 50, 50]])])
    s = CocoSource(tmp_path / "a.json")[0]
    assert s.mask[20, 10:40].all() and int(s.mask[:30].sum()) == 30
    assert len(s.vessels) == 2
    assert any("1 annotation covering no pixel centre" in n for n in s.notes), s.notes


# --- 2. Sample names -------------------------------------------------------------------------------------


def test_coco_names_stay_unique(tmp_path: Path) -> None:
    poly = [[10, 20, 40, 20, 40, 30, 10, 30]]
    for f in ("s1/0001.png", "s2/0001.png", "g.png", "g.jpg", "solo.png"):
        _image(tmp_path / f)
    images = [{"id": i, "file_name": f} for i, f in
              enumerate(["s1/0001.png", "s2/0001.png", "g.png", "g.jpg", "solo.png"], start=1)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "segmentation": poly} for i in range(1, 6)]
    _coco(tmp_path / "ann.json", images, anns)
    source = CocoSource(tmp_path / "ann.json")
    names = [s.name for s in source]
    # A directory part or a clashing stem: the relative path, and with its suffix if that still clashes
    # (in file-name order, whatever order the JSON lists them in: tests/flightsim/test_coco_order.py).
    assert names == ["g.jpg", "g.png", "s1/0001", "s2/0001", "solo"]
    assert any("named by its path" in n for n in source[0].notes)
    # An absolute file_name with a unique stem keeps the stem.
    _coco(tmp_path / "abs" / "ann.json", [{"id": 1, "file_name": str(tmp_path / "solo.png")}], anns[:1])
    assert CocoSource(tmp_path / "abs" / "ann.json")[0].name == "solo"


# --- 3. Palette images -----------------------------------------------------------------------------------


def test_palette_png_is_expanded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, (40, 50)).astype(np.uint8)
    rgb = np.dstack([g, 255 - g, g // 2])
    Image.fromarray(rgb).quantize(16).save(tmp_path / "colour.png")
    Image.fromarray(g).convert("RGB").quantize(16).save(tmp_path / "grey.png")
    want_c = np.asarray(Image.open(tmp_path / "colour.png").convert("RGB")).transpose(2, 0, 1)
    want_g = np.asarray(Image.open(tmp_path / "grey.png").convert("L"))[None]
    images = [{"id": 1, "file_name": "colour.png"}, {"id": 2, "file_name": "grey.png"}]
    anns = [{"id": i, "image_id": i, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9, 1, 9]]} for i in (1, 2)]
    _coco(tmp_path / "ann.json", images, anns)
    colour, grey = CocoSource(tmp_path / "ann.json")
    np.testing.assert_array_equal(colour.image, want_c)
    np.testing.assert_array_equal(grey.image, want_g)
    assert colour.bands == ["red", "green", "blue"] and grey.count == 1 and "palette" not in grey.bands
    assert any("palette" in n and "RGB" in n for n in colour.notes)
    assert any("palette" in n and "grey" in n for n in grey.notes)
    np.testing.assert_array_equal(colour.read((5, 7, 10, 12)), want_c[:, 5:15, 7:19])
    tile = next(tile_sample(colour, 16))
    np.testing.assert_array_equal(tile.pixels, want_c[:, :16, :16])
    colour.image = None  # as hil lets a sample's pixels go between its tiles: read again, still expanded
    np.testing.assert_array_equal(colour.load().image, want_c)


def test_palette_geotiff_windows_are_expanded(tmp_path: Path) -> None:
    idx = (np.arange(30 * 40) % 4).reshape(30, 40).astype(np.uint8)
    cmap = {0: (0, 0, 0, 255), 1: (200, 10, 10, 255), 2: (10, 200, 10, 255), 3: (10, 10, 200, 255)}
    path = tmp_path / "pal.tif"
    with rasterio.open(path, "w", driver="GTiff", height=30, width=40, count=1, dtype="uint8",
                       crs="EPSG:32632", transform=Affine(2, 0, 600000, 0, -2, 5000000), photometric="palette") as d:
        d.write(idx, 1)
        d.write_colormap(1, cmap)
    s = open_source(str(path))[0]
    lut = np.array([cmap[i][:3] for i in range(4)], np.uint8).T
    assert s.image is None and s.bands == ["red", "green", "blue"]
    np.testing.assert_array_equal(s.read((3, 4, 5, 6)), lut[:, idx[3:8, 4:10]])
    np.testing.assert_array_equal(s.read(), lut[:, idx])
    rgb, _ = s.preview(20)
    assert rgb.shape[2] == 3


# --- 4. GeoJSON truth in another CRS ---------------------------------------------------------------------


def _utm_scene(tmp_path: Path) -> tuple[Path, Affine]:
    t = Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0)
    path = tmp_path / "g.tif"
    with rasterio.open(path, "w", driver="GTiff", height=100, width=100, count=1, dtype="uint8",
                       crs="EPSG:32632", transform=t) as d:
        d.write(np.full((1, 100, 100), 30, np.uint8))
    return path, t


def test_geojson_truth_with_crs_member_is_reprojected(tmp_path: Path) -> None:
    scene, t = _utm_scene(tmp_path)
    hull = box(*(t * (10, 30)), *(t * (40, 20)))
    ll = transform_geom("EPSG:32632", "EPSG:4326", mapping(hull))
    (tmp_path / "t.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:4326"}},
        "features": [{"type": "Feature", "geometry": ll, "properties": {}}]}))
    s = open_source(str(scene), truth=tmp_path / "t.geojson")[0]
    assert abs(int(s.mask.sum()) - 300) <= 40 and s.mask[22:28, 12:38].all()
    assert s.vessels[0].bounds[0] > 500000
    assert any("reprojected" in n and "EPSG:4326" in n for n in s.notes)
    # Scene-CRS coordinates with a crs member (what flightsim generate writes) are unchanged.
    (tmp_path / "u.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32632"}},
        "features": [{"type": "Feature", "geometry": mapping(hull), "properties": {}}]}))
    s = open_source(str(scene), truth=tmp_path / "u.geojson")[0]
    assert int(s.mask.sum()) == 300 and s.vessels[0].equals(hull)


def test_geojson_truth_outside_the_scene_is_an_error(tmp_path: Path) -> None:
    scene, t = _utm_scene(tmp_path)
    hull = box(*(t * (10, 30)), *(t * (40, 20)))
    ll = transform_geom("EPSG:32632", "EPSG:4326", mapping(hull))
    (tmp_path / "t.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "features": [{"type": "Feature", "geometry": ll, "properties": {}}]}))
    with pytest.raises(ValueError, match=r"outside the scene.*EPSG:4326.*crs"):
        open_source(str(scene), truth=tmp_path / "t.geojson")[0]
    # Without a crs member, scene-CRS coordinates still work as before.
    (tmp_path / "u.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "features": [{"type": "Feature", "geometry": mapping(hull), "properties": {}}]}))
    assert int(open_source(str(scene), truth=tmp_path / "u.geojson")[0].mask.sum()) == 300


def _truth_file(path: Path, geometries: list[dict[str, Any]], crs: str | None = None) -> Path:
    member = {"crs": {"type": "name", "properties": {"name": crs}}} if crs else {}
    path.write_text(json.dumps({"type": "FeatureCollection", **member, "features": [
        {"type": "Feature", "geometry": g, "properties": {}} for g in geometries]}))
    return path


@pytest.mark.parametrize("crs", [None, "EPSG:32632"])
def test_geojson_bowtie_truth_is_made_valid_and_scores(tmp_path: Path, crs: str | None) -> None:
    """A self-intersecting truth polygon is made valid on read (as the COCO and DOTA readers do):
    as read before, match_objects raised a GEOSException after the whole run. With a crs member the
    reprojected geometry is the one made valid."""
    from hil.score import match_objects

    scene, t = _utm_scene(tmp_path)
    corners = [t * (10, 20), t * (40, 30), t * (40, 20), t * (10, 30)]  # a bowtie over rows 20-29, columns 10-39
    bowtie = {"type": "Polygon", "coordinates": [[list(c) for c in [*corners, corners[0]]]]}
    s = open_source(str(scene), truth=_truth_file(tmp_path / "t.geojson", [bowtie], crs))[0]
    assert len(s.vessels) == 1 and s.vessels[0].is_valid and s.vessels[0].geom_type == "MultiPolygon"
    assert s.vessels[0].area == pytest.approx(0.5 * 30 * 10 * 4)  # two triangles: half the box, 2 m pixels
    assert any("feature 0" in n and "made valid" in n for n in s.notes)
    hull = box(*(t * (10, 30)), *(t * (40, 20)))
    assert match_objects([hull], s.vessels, 0.5)["true_positives"] == 1


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": [600030.0, 4999950.0]},
    {"type": "LineString", "coordinates": [[600020.0, 4999950.0], [600080.0, 4999950.0]]},
    {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [600030.0, 4999950.0]}]},
])
def test_geojson_truth_without_an_area_is_refused(tmp_path: Path, geometry: dict[str, Any]) -> None:
    """A point or a line can never match a detection by IoU: read as truth it scored every vessel a
    miss, silently. It is refused, naming the file, the feature and the valid types."""
    scene, t = _utm_scene(tmp_path)
    hull = mapping(box(*(t * (10, 30)), *(t * (40, 20))))
    path = _truth_file(tmp_path / "t.geojson", [hull, geometry])
    with pytest.raises(ValueError, match=rf"t\.geojson: feature 1 is a {geometry['type']}.*'Polygon', 'MultiPolygon'"):
        open_source(str(scene), truth=path)[0]
    multi = {"type": "MultiPolygon", "coordinates": [hull["coordinates"]]}
    assert int(open_source(str(scene), truth=_truth_file(tmp_path / "m.geojson", [multi]))[0].mask.sum()) == 300


# --- 5. COCO errors ----------------------------------------------------------------------------------------


def test_coco_image_without_file_name(tmp_path: Path) -> None:
    _coco(tmp_path / "a.json", [{"id": 1, "height": 60}], [])
    with pytest.raises(ValueError, match=r"a.json: image entry 1 has no file_name"):
        CocoSource(tmp_path / "a.json")


def test_coco_annotation_of_an_unknown_image(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png"}], [_ann(3, image_id=7, segmentation=[])])
    with pytest.raises(ValueError, match=r"a.json: annotation 3 refers to image_id 7, which no image has"):
        CocoSource(tmp_path / "a.json")


def test_coco_short_polygon_is_skipped_with_a_note(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    good = [10, 20, 40, 20, 40, 30, 10, 30]
    _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png"}],
          [_ann(1, segmentation=[good, [50, 40, 60, 50]]),
           _ann(2, segmentation=[[50, 40, 60, 50]], bbox=[50, 40, 10, 10])])
    s = CocoSource(tmp_path / "a.json")[0]
    assert int(s.mask.sum()) == 400 and len(s.vessels) == 2
    assert any("2 polygons with fewer than 3 points skipped" in n for n in s.notes), s.notes
    assert any("1 annotation without a usable polygon" in n and "bbox" in n for n in s.notes), s.notes


def test_coco_images_folder_beside_annotations(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "0001.jpg")
    _coco(tmp_path / "annotations" / "inst.json", [{"id": 1, "file_name": "0001.jpg"}],
          [_ann(1, segmentation=[[10, 20, 40, 20, 40, 30, 10, 30]])])
    s = CocoSource(tmp_path / "annotations" / "inst.json")[0]
    assert s.name == "0001" and int(s.mask.sum()) == 300
    (tmp_path / "images" / "0001.jpg").unlink()
    with pytest.raises(ValueError, match=r"0001.jpg.*does not exist.*annotations/0001.jpg.*images/0001.jpg"):
        CocoSource(tmp_path / "annotations" / "inst.json")


# --- 6. Categories and crowds --------------------------------------------------------------------------------


def test_coco_keeps_vessel_categories_and_leaves_crowds_out(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    cats = [{"id": 1, "name": "Cargo Ship"}, {"id": 2, "name": "harbour"}, {"id": 3, "name": "boat"}]
    sq = [[50, 40, 60, 40, 60, 50, 50, 50]]
    _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png"}],
          [_ann(1, segmentation=[[10, 20, 40, 20, 40, 30, 10, 30]]),
           _ann(2, category_id=2, segmentation=[[0, 0, 5, 0, 5, 5, 0, 5]]),
           _ann(3, category_id=3, segmentation=sq),
           _ann(4, iscrowd=1, segmentation=[[60, 0, 70, 0, 70, 10, 60, 10]])], cats)
    s = CocoSource(tmp_path / "a.json")[0]
    assert int(s.mask.sum()) == 400 and len(s.vessels) == 2
    assert any("1 annotation of other categories" in n and "harbour" in n for n in s.notes), s.notes
    assert any("1 crowd annotation (iscrowd=1) left out" in n for n in s.notes), s.notes
    # No vessel-like category name: every category is kept, and the note says so.
    cats = [{"id": 1, "name": "object"}]
    _coco(tmp_path / "b.json", [{"id": 1, "file_name": "a.png"}],
          [_ann(1, segmentation=[[10, 20, 40, 20, 40, 30, 10, 30]])], cats)
    s = CocoSource(tmp_path / "b.json")[0]
    assert int(s.mask.sum()) == 300 and any("no category name" in n for n in s.notes), s.notes


def test_coco_all_crowd_rle_file_is_kept(tmp_path: Path) -> None:
    """sen2ships marks every (RLE) vessel iscrowd=1: a file with no iscrowd=0 keeps them."""
    _image(tmp_path / "a.png")
    m = np.zeros((60, 80), np.uint8)
    m[20:30, 10:40] = 1
    from flightsim.sources.coco import encode_rle

    _coco(tmp_path / "a.json", [{"id": 1, "file_name": "a.png"}], [_ann(1, iscrowd=1, segmentation=encode_rle(m))],
          [{"id": 1, "name": "vessel"}])
    s = CocoSource(tmp_path / "a.json")[0]
    np.testing.assert_array_equal(s.mask, m)
    assert any("1 annotation marked iscrowd=1 kept" in n for n in s.notes), s.notes


@pytest.mark.skipif(not (DATA / "ssdd" / "images").is_dir(), reason="no ../shared/data beside the clone")
def test_ssdd_names_and_truth_counts() -> None:
    """The shipped SSDD set: sample names are the file stems, and every annotation is a vessel."""
    source = open_source(f"coco:{DATA / 'ssdd' / 'images'}")
    coco = json.loads((DATA / "ssdd" / "images" / "ssdd_coco.json").read_text())
    assert len(source) == 928 and sum(len(a) for _, _, a in source.items) == len(coco["annotations"]) == 2040
    stems = [Path(im["file_name"]).stem for _, im, _ in source.items]
    assert [source[i].name for i in range(0, 928, 97)] == stems[::97]


def test_a_many_band_image_as_truth_mask_is_refused(tmp_path: Path) -> None:
    """The scene given as its own truth was taken as a mask (its first band > 0 almost everywhere:
    mIoU 0.002, exit status 0); a truth mask has one band."""
    scene = tmp_path / "rgb.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=100, width=100, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0)) as d:
        d.write(np.full((3, 100, 100), 30, np.uint8))
    with pytest.raises(ValueError, match=r"a truth mask has one band .* this file has \d+: is it the scene itself\?"):
        open_source(str(scene), truth=scene)[0]
