"""The rig end to end: a real runtime subprocess, real sockets, real GeoTIFFs, scored reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

import hil
from tests.conftest import make_brightness_bundle, write_scene_with_truth

REPO = Path(__file__).resolve().parents[2]
REQUIRED = ("tiles_sent", "tiles_processed", "tiles_rejected", "tiles_lost", "miou", "vessel_iou", "outline_vessel_iou",
            "precision", "recall", "f1", "latency_ms", "throughput_tiles_per_s", "device", "model")


@pytest.fixture(scope="module")
def bright64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b") / "bright64"
    make_brightness_bundle(out, size=64)
    return out


def _write_scene(path: Path, bands: int = 3, size: int = 160, specks: int = 0) -> tuple[Path, Path]:
    """A dark scene with bright ships, one of them across the border between two 64 px tiles, and
    ``specks`` bright single pixels that are no ship (below the smallest vessel)."""
    transform = Affine(2.0, 0.0, 600000.0, 0.0, -2.0, 5000000.0)
    pixels = np.full((bands, size, size), 20, dtype=np.uint8)
    ships = [(10, 50, 40, 8), (100, 20, 10, 30)]  # row, col, length along columns, width
    truth = np.zeros((size, size), dtype=np.uint8)
    for row, col, length, width in ships:
        pixels[:, row:row + width, col:col + length] = 250
        truth[row:row + width, col:col + length] = 1
    for i in range(specks):
        pixels[:, 140, 10 + 20 * i] = 250
    return write_scene_with_truth(path, pixels, truth, "EPSG:32632", transform)


def test_geotiff_scene_scores_and_merges_border_ships(tmp_path: Path, bright64: Path) -> None:
    scene, truth = _write_scene(tmp_path)
    result = hil.run(scene, bright64, tmp_path / "out", truth=truth)
    r = result.report
    assert all(key in r for key in REQUIRED)
    assert r["tiles_sent"] == 9 and r["tiles_processed"] == 9 and r["tiles_lost"] == 0
    assert r["vessel_iou"] == pytest.approx(1.0) and r["f1"] == pytest.approx(1.0)
    assert r["outline_vessel_iou"] == pytest.approx(1.0)
    # The 40 px ship spans columns 50..90, across the tile border at 64: one polygon, full length.
    detections = json.loads((tmp_path / "out" / "detections.geojson").read_text())["features"]
    lengths = sorted(round(f["properties"]["length_m"]) for f in detections)
    assert lengths == [60, 80]
    assert (tmp_path / "out" / "overview.png").stat().st_size > 10_000
    # No device given: the flight default of this host (MYRIAD, else NPU, else the Myriad X twin).
    from runtime.device import flight_default

    expected, _ = flight_default()
    assert r["device"] == expected and r["latency_ms"]["p50"] > 0
    if expected == "myriadx-emu":  # the twin: its profile, f32 on the CPU, and the cost model's estimate
        assert r["profile"] == "fp16-myriadx" and r["numerics"]["inference_precision"] == "f32"
        assert r["estimated_latency_ms"] > 0 and r["latency_estimate"]["kind"] == "ESTIMATE"


def test_the_outline_iou_scores_what_is_reported_and_the_vessel_iou_the_mask(tmp_path: Path, bright64: Path) -> None:
    """Single bright pixels pass the model's threshold but not its smallest vessel: they count
    against the network's mask (vessel_iou) and not against the reported outlines."""
    scene, truth = _write_scene(tmp_path, specks=4)
    r = hil.run(scene, bright64, tmp_path / "out", truth=truth).report
    ship_px = 40 * 8 + 10 * 30
    assert r["f1"] == pytest.approx(1.0) and r["outline_vessel_iou"] == pytest.approx(1.0)
    assert r["vessel_iou"] == pytest.approx(ship_px / (ship_px + 4))
    assert [p["outline_vessel_iou"] for p in r["per_scene"]] == [pytest.approx(1.0)]
    # each image keeps its counts, so a subset of images can be pooled again (scripts/seed_study.py)
    from hil.score import ious, summed_counts

    assert ious(summed_counts([p["pixel_counts"] for p in r["per_scene"]]))["vessel_iou"] == r["vessel_iou"]


def test_geojson_truth_gives_the_same_scores(tmp_path: Path, bright64: Path) -> None:
    scene, truth_tif = _write_scene(tmp_path)
    import rasterio.features
    from shapely.geometry import mapping, shape

    with rasterio.open(truth_tif) as src:
        mask, transform = src.read(1), src.transform
    features = [{"type": "Feature", "geometry": mapping(shape(g)), "properties": {}}
                for g, _ in rasterio.features.shapes(mask, mask=mask > 0, transform=transform)]
    truth_json = tmp_path / "truth.geojson"
    truth_json.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    r = hil.run(scene, bright64, tmp_path / "out", truth=truth_json).report
    assert r["n_truth"] == 2 and r["vessel_iou"] == pytest.approx(1.0) and r["f1"] == pytest.approx(1.0)


def test_tiles_the_model_cannot_take_are_rejected_and_accounted(tmp_path: Path, bright64: Path) -> None:
    scene, truth = _write_scene(tmp_path, bands=2)
    r = hil.run(scene, bright64, tmp_path / "out", truth=truth).report
    assert r["tiles_sent"] == 9 and r["tiles_rejected"] == 9 and r["tiles_processed"] == 0
    assert r["tiles_lost"] == 0 and r["rejected_by_reason"] == {"bad_shape": 9}
    assert r["recall"] == 0.0


@pytest.mark.slow
def test_cli_on_a_synthetic_scene(tmp_path: Path) -> None:
    bundle = tmp_path / "bright256"
    make_brightness_bundle(bundle, size=256)
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "hil", "run", "--scene", "synthetic", "--seed", "11", "--model", str(bundle),
         "--device", "CPU", "--report", str(out), "--quiet"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "lost 0" in proc.stdout and str(out) in proc.stdout
    r = json.loads((out / "report.json").read_text())
    assert r["tiles_processed"] + r["tiles_rejected"] == r["tiles_sent"] > 0
    assert r["scene"]["seed"] == 11 and r["numerics"]["inference_precision"] == "f32"


def test_missing_scene_is_a_clear_error(tmp_path: Path, bright64: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        hil.run(tmp_path / "nope.tif", bright64, tmp_path / "out")


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / "models/default/manifest.json").exists(), reason="no default model")
def test_default_model_finds_vessels_on_held_out_scene(tmp_path: Path) -> None:
    """Seed 7 is never used in training (search/defaults.toml trains from seed 1000 up)."""
    r = hil.run("synthetic", REPO / "models/default", tmp_path / "out", seed=7).report
    assert r["tiles_lost"] == 0 and r["tiles_processed"] == r["tiles_sent"]
    assert r["vessel_iou"] >= 0.5, r


def test_the_twin_scores_a_model_under_the_profile_it_was_aligned_to(tmp_path: Path, bright64: Path) -> None:
    """numerics.profile of the manifest reaches the twin (a search aligned to P is scored under P);
    --profile overrides it, e.g. with a hypothesis profile; the report says which and why."""
    from runtime.bundle import read_bundle, write_bundle

    bundle = read_bundle(bright64)
    manifest = {**bundle.manifest, "numerics": {**bundle.manifest["numerics"], "profile": "fp16-ieee"}}
    for key in ("files", "created"):
        manifest.pop(key)
    aligned = tmp_path / "aligned"
    write_bundle(aligned, bundle.files["model.xml"], bundle.files["model.bin"], manifest)
    scene, truth = _write_scene(tmp_path)
    r = hil.run(scene, aligned, tmp_path / "a", device="myriadx-emu", truth=truth).report
    assert r["profile"] == "fp16-ieee" and r["numerics"]["profile_source"] == "manifest numerics.profile"
    r = hil.run(scene, aligned, tmp_path / "b", device="myriadx-emu", truth=truth, profile="myriadx-native-interp").report
    assert r["profile"] == "myriadx-native-interp" and r["numerics"]["profile_source"] == "requested"
    r = hil.run(scene, bright64, tmp_path / "c", device="myriadx-emu", truth=truth).report
    assert r["profile"] == "fp16-myriadx" and r["numerics"]["profile_source"] == "the default of myriadx-emu"


def test_a_run_acknowledges_every_result_by_default_and_accounts_for_every_tile(tmp_path: Path, bright64: Path) -> None:
    """hil run --ground-ack: the rig acknowledges every result; the runtime has none left waiting."""
    scene, truth = _write_scene(tmp_path)
    r = hil.run(scene, bright64, tmp_path / "out", truth=truth, device="CPU").report
    assert r["tiles_processed"] == r["tiles_sent"] == 9 and r["tiles_lost"] == 0
    assert r["f1"] == pytest.approx(1.0)
    assert r["delivery"]["ground_ack"] and r["delivery"]["results_acked"] == 9 and r["delivery"]["awaiting_ground"] == 0


def test_a_data_set_of_image_files_is_held_in_memory_one_image_at_a_time(
        tmp_path: Path, bright64: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG or JPEG has no cheap windows, so its pixels are read whole; the rig reads each image
    when its tiles go and lets it go after, so a set of thousands of images is not all in memory
    before the first tile (the scores are those of the images as read)."""
    from tests.hil.test_split import _mask_folder

    _mask_folder(tmp_path / "set", 4)
    import hil.rig

    held: list[int] = []
    real = hil.rig.tile_sample

    def counting(sample, *args, **kwargs):  # type: ignore[no-untyped-def]
        held.append(sum(s.sample.image is not None for s in scenes_seen))
        return real(sample, *args, **kwargs)

    scenes_seen: list = []
    real_scene = hil.rig._Scene

    def recording(sample):  # type: ignore[no-untyped-def]
        scenes_seen.append(real_scene(sample))
        return scenes_seen[-1]

    monkeypatch.setattr(hil.rig, "tile_sample", counting)
    monkeypatch.setattr(hil.rig, "_Scene", recording)
    r = hil.run(f"hrsid-mini:{tmp_path / 'set'}", bright64, tmp_path / "out").report
    assert held == [1, 1, 1, 1]
    assert r["tiles_sent"] == r["tiles_processed"] == 4 and r["f1"] == 1.0
    assert all(s.sample.image is None for s in scenes_seen)


def test_a_run_that_fails_midway_leaves_no_collector_running(tmp_path: Path, bright64: Path) -> None:
    """Whatever stops a run after its sockets are open (here a window the streamer refuses), the
    result collector's thread and the sockets are closed before the error reaches the caller."""
    import threading

    scene, truth = _write_scene(tmp_path)
    before = {t for t in threading.enumerate() if t.name == "collector"}
    with pytest.raises(ValueError, match="window"):
        hil.run(scene, bright64, tmp_path / "out", truth=truth, window=-1)
    left = {t for t in threading.enumerate() if t.name == "collector" and t.is_alive()} - before
    assert not left


def _non_square_bundle(out: Path, height: int = 64, width: int = 128, bands: int = 3) -> Path:
    """A real IR of the brightness model (tests.conftest) taking a ``height`` x ``width`` input."""
    import tempfile

    import openvino as ov
    from openvino import opset8 as ops

    from runtime.bundle import write_bundle

    x = ops.parameter([1, bands, height, width], np.float32, name="input")
    conv = ops.convolution(x, ops.constant(np.full((1, bands, 1, 1), 10.0 / bands, np.float32)),
                           [1, 1], [0, 0], [0, 0], [1, 1])
    y = ops.sigmoid(ops.add(conv, ops.constant(np.full((1, 1, 1, 1), -5.0, np.float32))))
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(ov.Model([y], [x], "wide"), Path(tmp) / "model.xml", compress_to_fp16=True)
        xml, bin_ = (Path(tmp) / "model.xml").read_bytes(), (Path(tmp) / "model.bin").read_bytes()
    write_bundle(out, xml, bin_, {
        "name": "wide",
        "input": {"shape": [1, bands, height, width], "layout": "NCHW", "bands": ["b"] * bands, "dtype": "float32",
                  "normalization": {"where": "host", "mean": [0.0] * bands, "std": [255.0] * bands}},
        "output": {"name": "vessel_probability", "shape": [1, 1, height, width], "threshold": 0.5,
                   "activation": "sigmoid", "meaning": "probability that the pixel is a vessel"},
        "numerics": {"weights": "fp16"}, "parameters": bands + 1})
    return out


def test_a_model_of_non_square_input_is_refused_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rig's tiles are square: a 64 x 128 model was tiled by its height alone (64 x 64 tiles,
    every one of them rejected bad_shape), and the run reported as accounted for."""
    import hil.rig

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a runtime was started for a model the rig cannot tile for")

    monkeypatch.setattr(hil.rig, "RuntimeProcess", refuse)
    scene, truth = _write_scene(tmp_path)
    with pytest.raises(ValueError, match=r"wide: the model's input is 64x128 \(HxW\); the rig streams square tiles"):
        hil.run(scene, _non_square_bundle(tmp_path / "wide"), tmp_path / "out", truth=truth)


def test_what_the_scene_marks_as_no_data_holds_no_vessel(tmp_path: Path, bright64: Path) -> None:
    """A scene's no-data stripe (nodata = 255, bright to the model) is no vessel and no vessel pixel, as
    in runtime infer: hil scored it as a false alarm, and its pixels against the vessel IoU."""
    import rasterio

    scene, truth = _write_scene(tmp_path)
    with rasterio.open(scene, "r+") as dst:
        pixels = dst.read()
        pixels[:, 60:70, 0:60] = 255  # a 60 x 10 px "ship" of no data, away from the true ones
        dst.write(pixels)
        dst.nodata = 255
    r = hil.run(scene, bright64, tmp_path / "out", truth=truth, device="CPU").report
    assert r["no_data_dropped"] == 1
    assert r["f1"] == pytest.approx(1.0) and r["vessel_iou"] == pytest.approx(1.0)
    assert r["outline_vessel_iou"] == pytest.approx(1.0)


def test_a_scene_without_no_data_drops_nothing(tmp_path: Path, bright64: Path) -> None:
    scene, truth = _write_scene(tmp_path)
    r = hil.run(scene, bright64, tmp_path / "out", truth=truth, device="CPU").report
    assert r["no_data_dropped"] == 0 and r["n_detections"] == 2 and r["f1"] == pytest.approx(1.0)


def test_a_run_without_truth_says_nothing_was_scored(tmp_path: Path, bright64: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A GeoTIFF without --truth printed "n/a" for every score without saying why (new-user walkthrough)."""
    from hil.__main__ import main

    scene, _ = _write_scene(tmp_path)
    assert main(["run", "--scene", str(scene), "--model", str(bright64), "--device", "CPU",
                 "--report", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "F1 n/a" in out and "no truth: nothing was scored (give --truth" in out
    assert main(["run", "--scene", str(scene), "--truth", str(tmp_path / "truth.tif"), "--model", str(bright64),
                 "--device", "CPU", "--report", str(tmp_path / "scored")]) == 0
    assert "no truth" not in capsys.readouterr().out


@pytest.mark.parametrize("pier", [0, 255])  # land: a pier; then the mirror case, a water basin in a quay
def test_a_crescent_detection_is_judged_by_its_own_pixels_not_its_centroid(tmp_path: Path, pier: int) -> None:
    """A C-shaped detection around the tip of a pier has its centroid on the pier, outside the outline:
    all at sea, it was dropped as on land; and one on land around a basin was kept as at sea."""
    import rasterio
    from rasterio.crs import CRS

    from flightsim.sources.base import Sample
    from hil.rig import centroids_in, sea_mask
    from runtime.vectorize import vectorize

    sealand = np.full((64, 64), 255 - pier, np.uint8)
    sealand[26:39, 0:31] = pier  # the pier (or basin) from the west edge, its tip at column 30
    with rasterio.open(tmp_path / "harbour.png", "w", driver="PNG", width=64, height=64, count=1,
                       dtype="uint8") as dst:
        dst.write(sealand, 1)
    transform = Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 5000000.0)
    sample = Sample("harbour", 64, 64, transform, CRS.from_epsg(32631), ["b"], "uint8")
    prob = np.zeros((64, 64), np.float32)
    prob[20:24, 20:37] = prob[41:45, 20:37] = prob[20:45, 33:37] = 1.0  # a C around the tip, never on it
    vessels = vectorize(prob, 0.5, transform, sample.crs, min_area_px=1)
    sea = sea_mask(sample, tmp_path)
    assert len(vessels) == 1 and sea is not None
    assert (sea[prob > 0] == bool(255 - pier)).all()  # every pixel of it at sea (or every one on land)
    assert len(centroids_in(vessels, sample, sea)) == (1 if pier == 0 else 0)
