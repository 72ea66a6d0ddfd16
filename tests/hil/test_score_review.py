"""Review of the scoring: wrong numbers the rig, the search and the truth readers gave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import zmq
from affine import Affine
from shapely.geometry import box, mapping

import hil
from runtime.server import Runtime

GSD = 2.0
TRANSFORM = Affine(GSD, 0.0, 600000.0, 0.0, -GSD, 5000000.0)


def _scene(tmp: Path, hulls_px: list[tuple[int, int, int, int]], size: int = 128) -> Path:
    """A dark GeoTIFF with bright hulls at pixel boxes (row0, col0, row1, col1)."""
    pixels = np.full((size, size), 15, np.uint8)
    for r0, c0, r1, c1 in hulls_px:
        pixels[r0:r1, c0:c1] = 250
    path = tmp / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=TRANSFORM) as dst:
        dst.write(pixels[None].repeat(3, axis=0))
    return path


def _map_box(r0: float, c0: float, r1: float, c1: float):
    x0, y0 = TRANSFORM * (c0, r0)
    x1, y1 = TRANSFORM * (c1, r1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def test_truth_outside_the_scene_is_not_a_missed_vessel(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    """A GeoJSON truth of a wider area than the scene (an AOI's annotations, one scene of several):
    a vessel wholly outside the scene cannot be seen, and one half outside can only be found by its
    visible half. The pixel scores ignore both (the truth mask is rasterised on the scene's grid);
    the object scores counted the first a miss and matched the second by its whole outline."""
    scene = _scene(tmp_path, [(20, 10, 26, 40), (60, 100, 66, 128)])  # the second runs off the right edge
    truth = tmp_path / "truth.geojson"
    truth.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": mapping(g), "properties": {}} for g in (
            _map_box(20, 10, 26, 40),          # inside
            _map_box(60, 100, 66, 160),        # 28 px inside, 32 px beyond the edge
            _map_box(20, 300, 26, 330),        # wholly outside the scene
        )]}))
    r = hil.run(scene, brightness_bundle, tmp_path / "out", truth=truth,
                runtime=running_runtime.endpoints["control"]).report
    assert r["vessel_iou"] == 1.0  # every visible truth pixel found, nothing else
    assert r["n_truth"] == 2 and r["recall"] == 1.0 and r["f1"] == 1.0, r


def test_a_tile_rejected_by_its_ack_is_rejected_when_its_rejection_result_is_not_seen(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    """A tile refused before it was accepted is answered by its rejected ack on the tile link; its
    rejection result ("acknowledge": false) is sent once, held for no ground, so a collector that
    misses it (a second ground reading the same PUSH socket, which deals results round robin; a
    reconnect) never sees it again. The rig scored results only: such a tile was "lost" and
    "unaccounted", although the link had said it was rejected, and why."""
    from dataclasses import replace

    from hil.settings import DEFAULTS

    scene = _scene(tmp_path, [(20, 10, 26, 40)])  # 4 tiles of 64 px
    other = zmq.Context.instance().socket(zmq.PULL)  # a second ground on the results link
    other.setsockopt(zmq.LINGER, 0)
    other.connect(running_runtime.endpoints["results"])
    try:
        config = replace(DEFAULTS, run=replace(DEFAULTS.run, result_timeout_s=3.0))
        r = hil.run(scene, brightness_bundle, tmp_path / "out", runtime=running_runtime.endpoints["control"],
                    faults="bad_checksum=1.0,seed=1", config=config).report
        taken = 0
        while other.poll(200):
            other.recv_multipart()
            taken += 1
    finally:
        other.close()
    assert taken > 0  # the other ground did take some of the rejections
    assert r["tiles_rejected"] == 4 and r["rejected_by_reason"] == {"bad_checksum": 4}, r
    assert r["tiles_lost"] == 0 and r["tiles_unaccounted"] == 0
    assert r["faults"]["bad_checksum"]["outcomes"] == {"rejected:bad_checksum": 4}


def test_the_latency_of_a_tile_is_that_of_the_result_that_answers_it() -> None:
    """A rejection of a corrupted copy ("acknowledge": false; a resend the link damaged) may come
    before the accepted copy's result, which then answers the tile (hil.rig._score). The latency was
    taken from whichever came first: the tile was reported answered in 10 ms, by a rejection that
    does not count as its answer, when its result took 500 ms."""
    import time
    from types import SimpleNamespace

    from flightsim.sources.base import Sample
    from hil.rig import _score, _Scene
    from hil.settings import DEFAULTS
    from runtime.results import InFlight, describe

    mask = np.zeros((32, 32), np.uint8)
    mask[10:14, 5:25] = 1
    sample = Sample(name="s", height=32, width=32, transform=Affine.identity(), crs=None, bands=["b"], dtype="uint8",
                    image=np.zeros((1, 32, 32), np.uint8), mask=mask,
                    vessels=[box(5, 10, 25, 14)])
    scene, tile_id, t = _Scene(sample), "run/s/r0c0", time.monotonic()
    scene.windows[tile_id] = ((0, 0, 32, 32), (0, 0, 32, 32))
    header = {"scene_id": "run/s", "tile_id": tile_id, "seq": 0, "checksum": "x", "want_mask": True,
              "transform": tuple(Affine.identity())[:6], "window": (0, 0, 32, 32)}
    job = InFlight(header=header, crs=None, valid=(32, 32), threshold=0.5, model={}, t_received=0, t_submitted=0,
                   min_area_px=1)
    result, tile_mask = describe(mask[None, None].astype(np.float32), job, 0.0,
                                 {"min_area_px": 1, "simplify_px": 0.0, "connectivity": 8})
    copy_rejected = {"scene_id": "run/s", "tile_id": tile_id, "seq": 0, "checksum": "y", "status": "rejected",
                     "reason": "bad_checksum", "acknowledge": False}
    report, _ = _score(SimpleNamespace(sent_at={tile_id: t}, acks={}),
                       SimpleNamespace(results=[(t + 0.010, copy_rejected, None), (t + 0.500, result, tile_mask)]),
                       [scene], dict.fromkeys(scene.windows, scene), None, t, set(), DEFAULTS.score)
    assert report["tiles_processed"] == 1 and report["f1"] == 1.0
    assert report["latency_ms"]["max"] == pytest.approx(500.0, abs=1.0)
