"""Whole vessels across tile borders, and real-format sources through the rig."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.features import rasterize
from shapely.affinity import rotate
from shapely.geometry import box, mapping

import hil
from runtime.server import Runtime
from runtime.measure import describe

GSD = 2.0
TRANSFORM = Affine(GSD, 0.0, 600000.0, 0.0, -GSD, 5000000.0)


def _ship_scene(tmp: Path, centre_px: tuple[float, float], length_px: float, angle: float) -> tuple[Path, Path, float]:
    """A dark 200 px scene with one bright hull, as a GeoTIFF and a GeoJSON truth; returns its length (m)."""
    col, row = centre_px
    x, y = TRANSFORM * (col, row)
    hull = rotate(box(x - length_px * GSD / 2, y - 6 * GSD, x + length_px * GSD / 2, y + 6 * GSD), angle, origin=(x, y))
    mask = rasterize([(hull, 1)], out_shape=(200, 200), transform=TRANSFORM, dtype="uint8")
    pixels = np.where(mask, 250, 15).astype(np.uint8)[None].repeat(3, axis=0)
    scene = tmp / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=200, width=200, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=TRANSFORM) as dst:
        dst.write(pixels)
    truth = tmp / "truth.geojson"
    truth.write_text(json.dumps({"type": "FeatureCollection",
                                 "features": [{"type": "Feature", "geometry": mapping(hull), "properties": {}}]}))
    return scene, truth, describe(hull, rasterio.crs.CRS.from_epsg(32632))["length_m"]


@pytest.mark.parametrize("overlap", [0, 16])
def test_ship_across_tile_borders_is_one_polygon_of_its_true_length(
        overlap: int, tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    # Centred on the corner where four 64 px tiles meet (with overlap, near the ownership lines).
    scene, truth, true_length = _ship_scene(tmp_path, (64.0, 62.0), 90.0, 30.0)
    r = hil.run(scene, brightness_bundle, tmp_path / "out", truth=truth, overlap=overlap,
                runtime=running_runtime.endpoints["control"]).report
    detections = json.loads((tmp_path / "out" / "detections.geojson").read_text())["features"]
    assert len(detections) == 1, [d["properties"] for d in detections]
    props = detections[0]["properties"]
    assert props["pieces"] > 1  # it was cut, and merged
    assert abs(props["length_m"] - true_length) / true_length < 0.05, (props["length_m"], true_length)
    assert props["units"] == "m" and r["f1"] == 1.0 and r["tiles_unaccounted"] == 0


def test_grey_and_rgba_images_are_adapted_and_units_follow_gsd(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    """A hrsid-official-style folder of 1-band PNGs: the band is repeated for the RGB model, the
    report says so, and lengths are pixels unless --gsd is given."""
    data = tmp_path / "set" / "data"
    data.mkdir(parents=True)
    mask = np.zeros((100, 150), np.uint8)
    mask[40:46, 50:110] = 1  # 60 px long, across the border at column 64
    for name, bands in (("A", 1), ("B", 1)):
        with rasterio.open(data / f"{name}.png", "w", driver="PNG", height=100, width=150, count=bands,
                           dtype="uint8") as dst:
            dst.write(np.where(mask, 240, 10).astype(np.uint8)[None].repeat(bands, axis=0))
        with rasterio.open(data / f"{name}_instance_color_RGB.png", "w", driver="PNG", height=100, width=150,
                           count=3, dtype="uint8") as dst:
            dst.write(np.stack([mask * 128, mask * 0, mask * 0]).astype(np.uint8))
    control = running_runtime.endpoints["control"]
    r = hil.run(f"hrsid-official:{tmp_path / 'set'}", brightness_bundle, tmp_path / "px", runtime=control).report
    assert r["tiles_sent"] == 12 and r["tiles_processed"] == 12 and r["tiles_unaccounted"] == 0
    assert "repeated into 3 model bands" in next(iter(r["scene"]["band_adaptation"]))
    assert r["units"] == "px" and r["f1"] == 1.0 and len(r["per_scene"]) == 2
    lengths = [f["properties"]["length_m"] for f in json.loads((tmp_path / "px" / "detections.geojson").read_text())["features"]]
    assert lengths == pytest.approx([60.0, 60.0], rel=0.02)
    from flightsim.sources import Georef

    r = hil.run(f"hrsid-official:{tmp_path / 'set'}", brightness_bundle, tmp_path / "m", runtime=control,
                georef=Georef(gsd=1.5)).report
    lengths = [f["properties"]["length_m"] for f in json.loads((tmp_path / "m" / "detections.geojson").read_text())["features"]]
    assert r["units"] == "m" and lengths == pytest.approx([90.0, 90.0], rel=0.02)


def test_a_small_vessel_cut_into_pieces_under_the_smallest_size_is_merged_not_dropped(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    """A 32 px vessel cut by the border at column 64 into two 16 px pieces, under the model's 20 px:
    each tile used to drop its piece on board, so the ground had nothing to merge and the vessel was
    lost. Each piece now comes down provisional and the merge keeps the whole; a 9 px blob against
    another border, with no piece beyond it, is still dropped."""
    from runtime.bundle import read_bundle, rewritable_manifest, write_bundle

    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    manifest["output"]["min_area_px"] = 20
    small = tmp_path / "min20"
    write_bundle(small, bundle.files["model.xml"], bundle.files["model.bin"], manifest)
    pixels = np.full((200, 200), 15, np.uint8)
    pixels[100:104, 60:68] = 250  # the vessel: 4 x 8 px across column 64
    pixels[30:33, 125:128] = 250  # clutter: 3 x 3 px against column 128, whole in its tile
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=200, width=200, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=TRANSFORM) as dst:
        dst.write(pixels[None].repeat(3, axis=0))
    x0, y0 = TRANSFORM * (60, 100)
    x1, y1 = TRANSFORM * (68, 104)
    truth = tmp_path / "truth.geojson"
    truth.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": mapping(box(x0, y1, x1, y0)), "properties": {}}]}))
    r = hil.run(scene, small, tmp_path / "out", truth=truth, runtime=running_runtime.endpoints["control"]).report
    detections = json.loads((tmp_path / "out" / "detections.geojson").read_text())["features"]
    assert [(d["properties"]["pieces"], d["properties"]["area_px"]) for d in detections] == [(2, 32)]
    assert "provisional_min_area_px" not in detections[0]["properties"]
    assert r["f1"] == 1.0 and r["tiles_unaccounted"] == 0
