"""runtime.fit: the scene-suits-the-model rule, and the runtime applying it to what it receives
(real sockets, a real compiled IR): one event per unfit scene, tiles served, or rejected with
``strict_fit``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import zmq
from rasterio.crs import CRS

from flightsim.streamer import Streamer
from runtime import config, protocol
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle
from runtime.client import ControlClient
from runtime.fit import GSD_SLACK, SceneFit, fit_warnings, manifest_trained_for, tile_gsd_m
from runtime.server import Settings
from tests.conftest import runtime_thread
from tests.runtime.test_server import Ground, _tile

SAR_1M = {"modality": "sar", "gsd_m": [0.5, 1.0]}


def test_the_rule_names_what_does_not_fit() -> None:
    assert fit_warnings(SAR_1M, "sar", [0.8]) == []
    assert fit_warnings(SAR_1M, None, [1.4]) == []  # within the slack
    [modality] = fit_warnings(SAR_1M, "optical", [])
    assert "optical" in modality and "sar" in modality
    [gsd] = fit_warnings(SAR_1M, None, [3.0])
    assert "3.0" in gsd and "0.5-1.0" in gsd
    assert fit_warnings(None, "optical", [30.0]) == []  # a manifest that does not say
    with pytest.raises(ValueError, match="valid: \\['optical', 'sar'\\]"):
        fit_warnings(SAR_1M, "lidar", [])


def test_counts_of_another_type_than_the_training_data_are_named() -> None:
    """16-bit counts to a model trained on 8-bit amplitude: normalised with 8-bit statistics, every
    pixel would look like a bright target, and a float32 model takes them without complaint."""
    trained = SAR_1M | {"counts": ["uint8"]}
    assert fit_warnings(trained, "sar", [], ["uint8"]) == []
    [counts] = fit_warnings(trained, "sar", [], ["uint16", "uint8"])
    assert "uint16" in counts and "trained on uint8" in counts
    assert fit_warnings(SAR_1M, "sar", [], ["uint16"]) == []  # a manifest that does not say
    assert fit_warnings(SAR_1M | {"counts": "uint16"}, None, [], ["uint16"]) == []  # one type as a string


def test_the_count_type_comes_from_the_golden_tile_where_the_manifest_does_not_say() -> None:
    assert manifest_trained_for({"trained_for": SAR_1M, "golden": {"dtype": "uint8"}}) == SAR_1M | {"counts": "uint8"}
    said = SAR_1M | {"counts": ["uint16"]}
    assert manifest_trained_for({"trained_for": said, "golden": {"dtype": "uint8"}}) == said
    assert manifest_trained_for({"trained_for": SAR_1M}) == SAR_1M
    assert manifest_trained_for({"golden": {"dtype": "uint8"}}) is None


def test_a_tile_says_its_metres_per_pixel_in_a_metric_or_a_geographic_crs() -> None:
    """In degrees (or grads) too, at the tile's latitude: a 10 m export in EPSG:4326 sent to a 3 m
    model was not checked at all. Checked against the distances between the pixel's corners
    projected to UTM (rasterio's PROJ on the ellipsoid; the runtime's sphere is within 0.5%)."""
    from rasterio.warp import transform as project

    utm = CRS.from_epsg(32631)
    assert tile_gsd_m((10.0, 0.0, 5e5, 0.0, -10.0, 4e6), utm) == pytest.approx(10.0)
    for crs, t in ((CRS.from_epsg(4326), (1e-4, 0.0, 2.0, 0.0, -1e-4, 41.0)),
                   (CRS.from_epsg(4326), (9e-5, 0.0, 2.0, 0.0, 9e-5, -70.0)),  # south-up, far south
                   (CRS.from_epsg(4807), (1e-4, 0.0, 0.2, 0.0, -1e-4, 50.0))):  # grads from Paris
        a, _, c, _, e, f = t
        xs, ys = project(crs, utm, [c, c + a, c], [f, f, f + e])
        expected = (math.dist((xs[0], ys[0]), (xs[1], ys[1])) + math.dist((xs[0], ys[0]), (xs[2], ys[2]))) / 2
        assert tile_gsd_m(t, crs) == pytest.approx(expected, rel=0.005), crs
    assert tile_gsd_m((1.0, 0.0, 0.0, 0.0, 1.0, 0.0), None) is None


def test_a_scene_is_checked_once() -> None:
    fit = SceneFit(remember=2)
    header = {"scene_id": "s", "transform": [3.0, 0.0, 5e5, 0.0, -3.0, 4e6]}
    warnings, first = fit.check("model", SAR_1M, header, CRS.from_epsg(32631))
    assert warnings and first
    assert fit.check("model", SAR_1M, header, CRS.from_epsg(32631)) == (warnings, False)
    assert fit.check("other model", SAR_1M, header, CRS.from_epsg(32631))[1]  # a new model: checked again
    counts, _ = fit.check("8-bit model", SAR_1M | {"counts": ["uint8"]}, header | {"scene_id": "t", "dtype": "uint16"},
                          None)
    assert counts and "uint16" in counts[0]


@pytest.fixture()
def sar_bundle(brightness_bundle: Path, tmp_path: Path) -> Path:
    """The brightness model, said to be trained on 0.5-1 m SAR (the test tiles are 3 m, no modality)."""
    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    manifest["trained_for"] = SAR_1M
    rewrite_bundle(bundle, tmp_path / "sar", manifest)
    return tmp_path / "sar"


def _settings(endpoints: dict[str, str], strict: bool) -> Settings:
    cfg = config.defaults()
    cfg["models"]["strict_fit"] = strict
    return Settings.from_config(cfg, device="CPU", **endpoints)


@pytest.mark.parametrize("strict", [False, True], ids=["warn", "strict"])
def test_the_runtime_warns_once_per_unfit_scene_or_refuses_its_tiles(sar_bundle: Path, ipc_endpoints: dict[str, str],
                                                                     strict: bool) -> None:
    with runtime_thread(_settings(ipc_endpoints, strict), sar_bundle) as runtime:
        events = zmq.Context.instance().socket(zmq.SUB)
        events.setsockopt(zmq.SUBSCRIBE, b"")
        events.connect(runtime.endpoints["telemetry"])
        # subscribed once the first periodic telemetry arrives: no event can be missed after that
        assert events.poll(10_000), "no telemetry from the runtime"
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"])
        for i in range(3):  # 3 m tiles of one scene, to a 0.5-1 m model
            streamer.send_frames(f"scene/{i}", _tile(i).frames())
        # a tile that says it is optical, in a scene of its own
        frames = _tile(7).frames()
        header = json.loads(frames[0])
        header.update(scene_id="optical", tile_id="optical/0", modality="optical", transform=[0.8, 0, 5e5, 0, -0.8, 4e6])
        streamer.send_frames("optical/0", [protocol.dumps(header), frames[1]])
        bad = dict(header, scene_id="odd", tile_id="odd/0", modality="lidar")
        streamer.send_frames("odd/0", [protocol.dumps(bad), frames[1]])
        streamer.drain()
        results = {r["tile_id"]: r for r in ground.results(5)}
        assert results["odd/0"]["reason"] == "bad_header" and "valid:" in results["odd/0"]["detail"]
        served = {t: r for t, r in results.items() if t != "odd/0"}
        if strict:
            assert {r["reason"] for r in served.values()} == {"model_mismatch"}
            assert "ground sample distance" in results["scene/0"]["detail"]
            assert "optical" in results["optical/0"]["detail"]
        else:
            assert {r["status"] for r in served.values()} == {"ok"}
        seen = []
        while events.poll(1000):
            topic, body = events.recv_multipart()
            event = protocol.loads(body)
            if topic == b"event" and event["event"] == "scene_does_not_fit":
                seen.append(event)
                if len(seen) == 2:
                    break
        events.close()
        assert sorted(e["scene_id"] for e in seen) == ["optical", "scene"]  # once per scene, not per tile
        assert all(e["severity"] == "WARNING_LO" and e["refused"] is strict for e in seen)
        assert ControlClient(runtime.endpoints["control"]).status()["counters"]["tiles_unfit"] == 4


def test_metres_per_unit_follow_each_crs_object_not_an_id_it_once_had() -> None:
    """The unit is remembered per CRS object (runtime.fit._metres_per_unit): fresh objects whose ids
    come back after others are freed, and more of them than it keeps, each get their own unit."""
    us_foot = 1200 / 3937  # EPSG:2227 is in US survey feet
    for i in range(300):
        crs = CRS.from_epsg(2227 if i % 3 == 0 else 32631)
        expected = us_foot if i % 3 == 0 else 1.0
        assert tile_gsd_m((1.0, 0.0, 0.0, 0.0, -1.0, 0.0), crs) == pytest.approx(expected)
        del crs


def test_a_scene_at_exactly_the_slack_still_fits() -> None:
    """``GSD_SLACK``: a scene within 1.5 times the trained range counts as inside it, its edge included."""
    assert fit_warnings(SAR_1M, None, [1.0 * GSD_SLACK]) == []
    assert fit_warnings(SAR_1M, None, [1.0 * GSD_SLACK + 0.01]) != []
