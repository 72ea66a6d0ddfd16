"""runtime.fit's verdict is the tile's own: scene ids are not unique (docs/protocol.md), so a tile of
another resolution or count type under a scene id already seen is judged on what it says, not given
the first tile's verdict. One event per scene and finding, still."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS

from flightsim.streamer import Streamer
from runtime import config, protocol
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle
from runtime.fit import SceneFit
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground, _tile

OPTICAL_3M = {"modality": "optical", "gsd_m": [3.0, 3.0], "counts": ["uint8"]}
UTM = CRS.from_epsg(32631)
FITS = {"scene_id": "scene.tif", "transform": [3.0, 0.0, 5e5, 0.0, -3.0, 4e6], "dtype": "uint8"}
UNFIT = {"scene_id": "scene.tif", "transform": [0.3, 0.0, 5e5, 0.0, -0.3, 4e6], "dtype": "uint16"}


def test_each_tile_of_a_scene_id_gets_its_own_verdict() -> None:
    fit = SceneFit()
    assert fit.check("model", OPTICAL_3M, FITS, UTM) == ([], False)
    warnings, first = fit.check("model", OPTICAL_3M, UNFIT, UTM)  # was ([], False): the first tile's verdict
    assert first and len(warnings) == 2 and "0.3" in warnings[0] and "uint16" in warnings[1]
    assert fit.check("model", OPTICAL_3M, UNFIT, UTM) == (warnings, False)  # said once per scene
    assert fit.check("model", OPTICAL_3M, FITS, UTM) == ([], False)  # was the other tile's reasons


def test_a_scene_id_raises_an_event_per_finding_not_per_tile() -> None:
    fit = SceneFit(remember=2)
    gsd_only = dict(UNFIT, dtype="uint8")
    [gsd], first = fit.check("model", OPTICAL_3M, gsd_only, UTM)
    assert first and "0.3" in gsd
    assert fit.check("model", OPTICAL_3M, gsd_only | {"tile_id": "other"}, UTM) == ([gsd], False)
    assert fit.check("model", OPTICAL_3M, UNFIT, UTM)[1]  # a finding not yet said of this scene
    assert fit.check("other model", OPTICAL_3M, gsd_only, UTM)[1]


def _unfit_tile(scene: str, tile: str, seq: int, transform: list[float], dtype: str) -> list[bytes]:
    pixels = np.zeros((3, 64, 64), dtype=dtype)
    pixels[:, 10:20, 5:45] = 200
    frames = _tile(seq, pixels).frames()
    header = json.loads(frames[0])
    header.update(scene_id=scene, tile_id=tile, transform=transform)
    return [protocol.dumps(header), frames[1]]


@pytest.mark.parametrize("fitting_first", [True, False], ids=["fitting-first", "unfit-first"])
def test_strict_fit_judges_every_tile_under_a_shared_scene_id(brightness_bundle: Path, tmp_path: Path,
                                                              ipc_endpoints: dict[str, str], fitting_first: bool) -> None:
    """With strict_fit, a 0.3 m uint16 tile after a 3 m uint8 one of the same scene id was served,
    and in the other order the fitting tile was rejected with the other tile's reasons."""
    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    manifest["trained_for"] = OPTICAL_3M
    rewrite_bundle(bundle, tmp_path / "m", manifest)
    cfg = config.defaults()
    cfg["models"]["strict_fit"] = True
    tiles = {"fits": _unfit_tile("scene.tif", "fits", 0, FITS["transform"], "uint8"),
             "unfit": _unfit_tile("scene.tif", "unfit", 1, UNFIT["transform"], "uint16")}
    order = ["fits", "unfit"] if fitting_first else ["unfit", "fits"]
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), tmp_path / "m") as runtime:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"])
        results = {}
        try:
            for name in order:  # one at a time: the second is judged after the first's verdict exists
                streamer.send_frames(name, tiles[name])
                streamer.drain()
                [result] = ground.results(1)
                results[result["tile_id"]] = result
        finally:
            streamer.close()
            for sock in (ground.sock, ground.acks):
                if sock is not None:
                    sock.close()
    assert results["fits"]["status"] == "ok", results["fits"]
    assert results["unfit"]["reason"] == "model_mismatch"
    assert "ground sample distance" in results["unfit"]["detail"] and "uint16" in results["unfit"]["detail"]
