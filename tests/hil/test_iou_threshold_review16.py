"""Review: a pair at IoU exactly 0.5 counted or not by the georeference's rounding.

Outlines on the pixel grid (every traced detection, every truth made from a mask) have areas in
whole pixels, so an IoU of exactly 1/2 is common for small ships (87 of 174 px on the held-out test
split of models/sar, chip coco/000182). ``hil.score.match_objects`` computed the IoU in map
coordinates, where a pixel of 0.3 m or 1e-5 degrees is no exact binary fraction and easting and
northing are large: the same pair came out 0.49999999999 or 0.5000000001, a match in pixel units
and a miss on a georeferenced scene, so the same detections scored differently by where the scene is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from shapely.geometry import mapping

import hil
from hil.score import match_objects
from runtime.server import Runtime

GRIDS = {
    "pixels": Affine(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "utm 0.3 m": Affine(0.3, 0.0, 600000.0, 0.0, -0.3, 5000000.0),
    "degrees 1e-5": Affine(1e-5, 0.0, 10.3, 0.0, -1e-5, 50.7),
    "degrees 1e-6 far west": Affine(1e-6, 0.0, -170.123, 0.0, -1e-6, -45.6),
    "turned 30 degrees": Affine.translation(600123.4, 5000000.0) * Affine.rotation(30) * Affine.scale(0.5, -0.5),
}


def _px_box(t: Affine, r0: int, c0: int, r1: int, c1: int) -> shapely.Polygon:
    return shapely.Polygon([t * (c, r) for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1))])


@pytest.mark.parametrize("grid", list(GRIDS))
def test_a_pair_at_exactly_half_matches_on_every_grid(grid: str) -> None:
    t = GRIDS[grid]
    # (detection, truth) in pixels, each of IoU exactly 1/2
    pairs = [((20, 10, 26, 30), (20, 10, 26, 50)), ((0, 0, 1, 1), (0, 0, 1, 2)),
             ((20, 10, 23, 30), (20, 10, 26, 30)), ((5, 5, 8, 12), (5, 5, 8, 19)), ((40, 7, 41, 9), (40, 7, 41, 11))]
    for det, truth in pairs:
        r = match_objects([_px_box(t, *det)], [_px_box(t, *truth)], 0.5)
        assert r["true_positives"] == 1, (grid, det, truth)
        below = (det[0], det[1], det[2], det[3] - 0.01)  # a hundredth of a pixel short of it: no match
        assert match_objects([_px_box(t, *below)], [_px_box(t, *truth)], 0.5)["true_positives"] == 0


def test_the_rig_counts_a_half_match_on_a_georeferenced_scene(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    """End to end on a real GeoTIFF in degrees: a detected hull of 6x20 px inside a true one of 6x40."""
    t = GRIDS["degrees 1e-5"]
    pixels = np.full((128, 128), 15, np.uint8)
    pixels[20:26, 10:30] = 250
    scene = tmp_path / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=128, width=128, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=t) as dst:
        dst.write(pixels[None].repeat(3, axis=0))
    truth = tmp_path / "truth.geojson"
    truth.write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:4326"}},
        "features": [{"type": "Feature", "geometry": mapping(_px_box(t, 20, 10, 26, 50)), "properties": {}}]}))
    r = hil.run(scene, brightness_bundle, tmp_path / "out", truth=truth,
                runtime=running_runtime.endpoints["control"]).report
    assert r["vessel_iou"] == 0.5 and r["n_predicted"] == 1 and r["n_truth"] == 1
    assert r["true_positives"] == 1 and r["f1"] == 1.0, r
