"""The rig's scoring and accounting with a perfect detector, and the collector against bad results.

A perfect detector (the truth mask given as the network's probabilities, vectorised as the runtime
does) must score exactly 1.0 whatever the grid; every tile must be counted once, whatever comes
down the results link; and one unreadable result must cost no more than itself.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import rasterio.features
import zmq
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import shape

from flightsim.faults import FaultLedger, FaultSpec
from flightsim.sources.base import Sample
from flightsim.tiles import owned_windows, tile_grid
from hil.collector import ResultCollector
from hil.rig import _score, _Scene
from hil.settings import DEFAULTS
from runtime import protocol
from runtime.results import InFlight, describe

BOXES = [(10, 60, 14, 72), (40, 20, 90, 26), (120, 100, 150, 130), (60, 40, 70, 100), (30, 55, 36, 75)]
ANONYMOUS = {"scene_id": None, "tile_id": None, "seq": None, "checksum": None, "status": "rejected",
             "reason": "bad_header"}


def _sample(h: int, w: int, boxes: list[tuple[int, int, int, int]], transform: Affine, crs: CRS | None) -> Sample:
    mask = np.zeros((h, w), np.uint8)
    for r0, c0, r1, c1 in boxes:
        mask[r0:r1, c0:c1] = 1
    vessels = [shape(g) for g, v in rasterio.features.shapes(mask, mask=mask.astype(bool), transform=transform,
                                                             connectivity=8) if v == 1]
    return Sample(name="s", height=h, width=w, transform=transform, crs=crs, bands=["b"], dtype="uint8",
                  image=np.zeros((1, h, w), np.uint8), mask=mask, vessels=vessels)


def _perfect(sample: Sample, size: int, overlap: int, drop: set[str] = frozenset(),  # type: ignore[assignment]
             extra: list[tuple[float, dict[str, Any], None]] = (), injector: Any = None  # type: ignore[assignment]
             ) -> dict[str, Any]:
    """The rig's report of ``sample`` answered by a perfect detector (tiles in ``drop`` unanswered)."""
    scene, results, sent_at, t = _Scene(sample), [], {}, time.monotonic()
    grid = tile_grid(sample.height, sample.width, size, overlap)
    for win, own in zip(grid, owned_windows(grid)):
        tile_id = f"run/s/r{win[0]}c{win[1]}"
        scene.windows[tile_id], sent_at[tile_id] = (win, own), t
        if tile_id in drop:
            continue
        row, col, h, w = win
        prob = np.zeros((1, 1, size, size), np.float32)
        prob[0, 0, :h, :w] = sample.mask[row:row + h, col:col + w]  # type: ignore[index]
        header = {"scene_id": "run/s", "tile_id": tile_id, "seq": 0, "checksum": "x",
                  "transform": tuple(sample.transform * Affine.translation(col, row))[:6], "window": win}
        job = InFlight(header=header, crs=sample.crs, valid=(h, w), threshold=0.5, model={}, t_received=0,
                       t_submitted=0, min_area_px=1)
        result, mask = describe(prob, job, 0.0, {"min_area_px": 1, "simplify_px": 0.0, "connectivity": 8})
        results.append((t + 0.1, result, mask))
    report, _ = _score(SimpleNamespace(sent_at=sent_at, acks={}), SimpleNamespace(results=[*results, *extra]),
                       [scene], dict.fromkeys(scene.windows, scene), injector, t, set(), DEFAULTS.score)
    return report


@pytest.mark.parametrize("angle", [90, 270])
@pytest.mark.parametrize("size, overlap", [(64, 0), (64, 16)])
def test_a_grid_turned_by_90_degrees_merges_border_vessels(angle: int, size: int, overlap: int) -> None:
    """The merge tolerance is a pixel's size: taken from ``transform.a`` alone it was 0 on a grid
    turned by 90 degrees, and a vessel across a tile border was counted twice."""
    transform = Affine.translation(512345.7, 4012345.3) * Affine.rotation(angle) * Affine.scale(0.7, -0.7)
    r = _perfect(_sample(150, 130, BOXES, transform, CRS.from_epsg(32631)), size, overlap)
    assert (r["precision"], r["recall"], r["n_predicted"], r["n_truth"]) == (1.0, 1.0, 5, 5)


def _balanced(r: dict[str, Any]) -> bool:
    return (r["tiles_sent"] == r["tiles_processed"] + r["tiles_rejected"] + r["tiles_lost"]
            and r["tiles_lost"] == sum(r["tiles_lost_by_link"].values()) + r["tiles_unaccounted"]
            and r["tiles_rejected"] == sum(r["rejected_by_reason"].values()) and r["tiles_unaccounted"] >= 0)


def test_an_anonymous_rejection_counts_for_no_more_tiles_than_went_unanswered() -> None:
    sample = _sample(128, 128, [(10, 10, 20, 30)], Affine.identity(), None)
    # every tile answered: the anonymous one is a stray message, not a fifth tile
    r = _perfect(sample, 64, 0, extra=[(0.0, ANONYMOUS, None)])
    assert (r["tiles_sent"], r["tiles_processed"], r["tiles_rejected"], r["anonymous_results"]) == (4, 4, 0, 1)
    assert _balanced(r) and r["rejected_by_reason"] == {}
    # one tile unanswered: it may be the one whose header was unreadable; the second anonymous is extra
    r = _perfect(sample, 64, 0, drop={"run/s/r64c64"}, extra=[(0.0, ANONYMOUS, None)] * 2)
    assert (r["tiles_processed"], r["tiles_rejected"], r["tiles_lost"], r["anonymous_results"]) == (3, 1, 0, 1)
    assert _balanced(r) and r["rejected_by_reason"] == {"bad_header": 1}
    # the unanswered tile was dropped by the link: it never reached the runtime to be rejected
    injector = SimpleNamespace(ledger=FaultLedger(faults={"run/s/r64c64": "drop"}),
                               spec=FaultSpec.parse("drop=0.25,seed=0"))
    r = _perfect(sample, 64, 0, drop={"run/s/r64c64"}, extra=[(0.0, ANONYMOUS, None)], injector=injector)
    assert (r["tiles_lost"], r["tiles_lost_by_link"], r["tiles_unaccounted"], r["anonymous_results"]) == \
        (1, {"drop": 1}, 0, 1)
    assert _balanced(r)


@pytest.fixture()
def link() -> Any:
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    collector = ResultCollector(f"tcp://127.0.0.1:{port}", context=ctx)
    time.sleep(0.2)
    yield push, collector
    collector.close()
    push.close(0)


def _result(tile_id: str | None) -> list[bytes]:
    if tile_id is None:
        return protocol.encode_result(dict(ANONYMOUS))
    return protocol.encode_result({"scene_id": "s", "tile_id": tile_id, "status": "ok"}, np.zeros((2, 2), np.uint8))


def test_a_malformed_result_is_counted_and_the_collector_keeps_going(link: Any) -> None:
    """Valid JSON with a mask description that is no mask raised KeyError in the collector's thread,
    which ended it: every later result was lost, and nothing said so."""
    push, collector = link
    push.send_multipart(_result("t0"))
    for bad in ({"dtype": "uint8"}, {"shape": "2x2"}, [2, 2], {"shape": [3, 3]}):
        push.send_multipart([protocol.dumps({"v": 1, "type": "result", "tile_id": "tX", "mask": bad}), b"\0" * 4])
    for i in (1, 2, 3):
        push.send_multipart(_result(f"t{i}"))
    assert collector.wait_for(4, 5.0), collector.results
    assert [r["tile_id"] for _, r, _ in collector.results] == ["t0", "t1", "t2", "t3"]
    assert collector.malformed == 4 and collector._thread.is_alive()


@pytest.mark.parametrize("bad", [{"tile_id": ["t0"], "status": "ok"}, {"tile_id": {"t": 0}, "status": "ok"},
                                 {"scene_id": 7, "tile_id": "t0", "status": "ok"}, {"tile_id": "t0"},
                                 {"tile_id": "t0", "status": None}],
                         ids=["list_id", "object_id", "number_scene", "no_status", "null_status"])
def test_a_result_with_an_id_or_status_of_the_wrong_type_is_malformed_and_the_rig_goes_on(
        link: Any, bad: dict[str, Any]) -> None:
    """Valid JSON of version 1 with a tile id that is a list reached the rig: the wait for the tiles
    raised TypeError (unhashable), and a result with no status raised KeyError in the scoring: one
    bad message ended the run. It is malformed: counted, and the tile still waits for its own."""
    push, collector = link
    push.send_multipart([protocol.dumps({"v": 1, "type": "result", **bad})])
    push.send_multipart(_result("t0"))
    assert collector.wait_for_tiles({"t0"}, timeout_s=5.0)
    assert collector.malformed == 1 and [r["tile_id"] for _, r, _ in collector.results] == ["t0"]


def test_an_anonymous_result_does_not_end_the_wait_before_a_tile_s_own_result(link: Any) -> None:
    push, collector = link
    push.send_multipart(_result("t0"))
    push.send_multipart(_result(None))  # e.g. a stray unreadable message

    def late() -> None:
        time.sleep(0.4)
        push.send_multipart(_result("t1"))

    sender = threading.Thread(target=late)
    sender.start()
    try:
        assert collector.wait_for_tiles({"t0", "t1"}, timeout_s=5.0)
        assert "t1" in {r["tile_id"] for _, r, _ in collector.results}
    finally:
        sender.join()


def test_an_anonymous_result_still_answers_a_tile_whose_own_never_comes(link: Any) -> None:
    """A tile whose header was unreadable is answered only anonymously: the wait ends once results
    stop coming, not at the timeout."""
    push, collector = link
    push.send_multipart(_result("t0"))
    push.send_multipart(_result(None))
    t = time.monotonic()
    assert collector.wait_for_tiles({"t0", "t1"}, timeout_s=10.0, settle_s=0.3)
    assert time.monotonic() - t < 5.0


def test_the_report_counts_malformed_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A result the ground cannot read is dropped, its tile counted lost, and the report says why."""
    from dataclasses import replace

    import hil
    from tests.conftest import make_brightness_bundle
    from tests.hil.test_rig import _write_scene

    make_brightness_bundle(tmp_path / "bright64", size=64)
    scene, truth = _write_scene(tmp_path)
    real = protocol.decode_result
    spoiled: list[str] = []

    def spoil_one(frames: list[bytes]) -> Any:
        result, mask = real(frames)
        if not spoiled:
            spoiled.append(result["tile_id"])
            raise KeyError("shape")  # what a bad mask description raised
        return result, mask

    monkeypatch.setattr(protocol, "decode_result", spoil_one)
    config = replace(DEFAULTS, run=replace(DEFAULTS.run, result_timeout_s=2.0))
    r = hil.run(scene, tmp_path / "bright64", tmp_path / "out", truth=truth, device="CPU", ground_ack=False,
                config=config).report
    assert spoiled and r["malformed_results"] == 1
    assert (r["tiles_sent"], r["tiles_processed"], r["tiles_lost"], r["tiles_unaccounted"]) == (9, 8, 1, 1)


def test_runtime_infer_merges_with_a_pixel_s_tolerance_on_a_turned_grid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``runtime infer`` merges tile pieces as the rig does: its tolerance (1/100 of a pixel) was
    ``0.01 * |a|``, 0 on a grid turned by 90 degrees, where neighbouring edges agree only to rounding."""
    import rasterio

    from runtime import offline
    from tests.conftest import make_brightness_bundle

    make_brightness_bundle(tmp_path / "b", size=64)
    transform = Affine.translation(512345.7, 4012345.3) * Affine.rotation(90) * Affine.scale(0.7, -0.7)
    pixels = np.full((3, 128, 128), 15, np.uint8)
    pixels[:, 30:38, 40:100] = 250  # across the border at column 64
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=128, width=128, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=transform) as dst:
        dst.write(pixels)
    tolerances: list[float] = []
    real = offline.merge_detections

    def recording(features: Any, crs: Any, tolerance: float = 0.0, **kwargs: Any) -> Any:
        tolerances.append(tolerance)
        return real(features, crs, tolerance=tolerance, **kwargs)

    monkeypatch.setattr(offline, "merge_detections", recording)
    fc = offline.infer_file(tmp_path / "b", tmp_path / "s.tif", "CPU",
                            {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8})
    assert tolerances == [pytest.approx(0.007)]
    assert [f["properties"]["pieces"] for f in fc["features"]] == [2]


def test_runtime_infer_keeps_a_small_vessel_that_a_tile_border_cuts(tmp_path: Path) -> None:
    """``runtime infer`` tiles the image as the payload does: a 24 px vessel cut by the border at
    column 64 into two 12 px pieces, under min_area_px 20, is one vessel, not two dropped pieces; a
    12 px blob in the scene's last column (no tile beyond it) is still dropped."""
    import rasterio

    from runtime import offline
    from tests.conftest import make_brightness_bundle

    make_brightness_bundle(tmp_path / "b", size=64)
    pixels = np.full((3, 128, 128), 15, np.uint8)
    pixels[:, 30:33, 60:68] = 250
    pixels[:, 90:96, 126:128] = 250
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=128, width=128, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=Affine(1.0, 0, 500000.0, 0, -1.0, 4000000.0)) as dst:
        dst.write(pixels)
    fc = offline.infer_file(tmp_path / "b", tmp_path / "s.tif", "CPU",
                            {"min_area_px": 20, "simplify_px": 0.0, "connectivity": 8})
    assert [(f["properties"]["pieces"], f["properties"]["area_px"]) for f in fc["features"]] == [(2, 24)]
