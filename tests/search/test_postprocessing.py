"""Threshold and smallest vessel chosen on validation by object F1, and carried to the payload."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.data import SceneArrays
from search.evaluate import choose_postprocessing, object_scores


def test_the_pair_with_the_best_object_f1_is_chosen() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[10:14, 10:30] = 1                       # one ship, 80 px
    prob = np.where(mask > 0, 0.9, 0.05).astype(np.float32)
    prob[40:43, 40:43] = 0.55                    # 9 px of clutter just over 0.5
    rows = object_scores([prob], [SceneArrays(0, np.zeros((1, 64, 64), np.uint8), mask)], [0.5, 0.6], [4, 20])
    table = {(r["threshold"], r["min_area_px"]): r["f1"] for r in rows}
    assert table == {(0.5, 4): 0.6667, (0.5, 20): 1.0, (0.6, 4): 1.0, (0.6, 20): 1.0}
    chosen = choose_postprocessing(rows)
    assert (chosen["threshold"], chosen["min_area_px"]) == (0.5, 20)  # ties: nearest 0.5, then smaller


def test_the_runtime_drops_vessels_smaller_than_the_manifest_says(tmp_path: Path) -> None:
    from runtime import config
    from runtime.bundle import read_bundle, write_bundle
    from runtime.offline import infer_file
    from tests.conftest import make_brightness_bundle

    bundle = make_brightness_bundle(tmp_path / "b", size=64)
    image = np.zeros((3, 64, 64), np.uint8)
    image[:, 10:14, 10:30] = 255                 # 80 px
    image[:, 40:43, 40:43] = 255                 # 9 px
    np.save(tmp_path / "tile.npy", image)
    counts = {}
    for min_area in (None, 20):
        manifest = {k: v for k, v in bundle.manifest.items() if k != "files"}
        if min_area is not None:
            manifest["output"] = {**manifest["output"], "min_area_px": min_area}
        write_bundle(tmp_path / f"m{min_area}", bundle.files["model.xml"], bundle.files["model.bin"], manifest)
        assert read_bundle(tmp_path / f"m{min_area}").min_area_px == min_area
        result = infer_file(tmp_path / f"m{min_area}", tmp_path / "tile.npy", "CPU", dict(config.defaults()["vectorize"]))
        counts[min_area] = len(result["features"])
    assert counts == {None: 2, 20: 1}


def test_a_score_cut_is_chosen_with_the_threshold_and_size() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[10:14, 10:30] = 1                       # one ship, confidently found
    prob = np.where(mask > 0, 0.99, 0.05).astype(np.float32)
    prob[40:50, 40:50] = 0.7                     # a large, lukewarm false alarm (land)
    scenes = [SceneArrays(0, np.zeros((1, 64, 64), np.uint8), mask)]
    rows = object_scores([prob], scenes, [0.5], [4], min_scores=[0.0, 0.9])
    assert {r["min_score"]: r["f1"] for r in rows} == {0.0: 0.6667, 0.9: 1.0}
    assert choose_postprocessing(rows)["min_score"] == 0.9
    # a cut that removes nothing loses the tie to no cut
    assert choose_postprocessing(object_scores([prob], scenes, [0.8], [4], min_scores=[0.0, 0.9]))["min_score"] == 0.0


def test_the_serving_runtime_drops_vessels_below_the_manifest_score(tmp_path: Path, ipc_endpoints: dict[str, str]) -> None:
    """output.min_score reaches the payload: a served tile loses its lukewarm component, kept without it."""
    import pytest

    from flightsim.streamer import Streamer
    from runtime import config
    from runtime.bundle import BundleError, read_bundle, rewritable_manifest, rewrite_bundle
    from runtime.server import Settings
    from tests.conftest import make_brightness_bundle, runtime_thread
    from tests.runtime.test_server import Ground, _tile

    bundle = make_brightness_bundle(tmp_path / "b", size=64)
    pixels = np.zeros((3, 64, 64), np.uint8)
    pixels[:, 10:14, 10:30] = 255                # mean probability sigmoid(5) = 0.993
    pixels[:, 40:50, 40:50] = 200                # sigmoid(2.84) = 0.945
    manifest = rewritable_manifest(bundle)
    manifest["output"]["min_score"] = 0.98
    rewrite_bundle(bundle, tmp_path / "cut", manifest)
    assert read_bundle(tmp_path / "cut").min_score == 0.98 and bundle.min_score == 0.0
    manifest["output"]["min_score"] = 1.0
    with pytest.raises(BundleError, match="min_score"):
        rewrite_bundle(bundle, tmp_path / "bad", manifest)
    found = {}
    for name in ("b", "cut"):
        settings = Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints)
        with runtime_thread(settings, tmp_path / name) as runtime:
            ground = Ground(runtime.endpoints)
            streamer = Streamer(runtime.endpoints["tiles"])
            streamer.send_frames("scene/0", _tile(0, pixels).frames())
            streamer.drain()
            [result] = ground.results(1)
            streamer.close()
        found[name] = sorted(f["properties"]["score"] for f in result["detections"]["features"])
    assert found["b"] == pytest.approx([0.945, 0.993], abs=0.01) and found["cut"] == pytest.approx([0.993], abs=0.01)


def test_the_search_report_shows_what_the_score_cut_is_worth() -> None:
    from search.report import _postprocessing

    table = [{"threshold": 0.5, "min_area_px": 4, "min_score": 0.0, "f1": 0.4},
             {"threshold": 0.9, "min_area_px": 80, "min_score": 0.0, "f1": 0.45},
             {"threshold": 0.9, "min_area_px": 80, "min_score": 0.98, "f1": 0.6}]
    row = _postprocessing({"chosen": table[2], "table": table})
    assert row == {"postprocessing": "0.9 / 80 / 0.98", "val_f1_torch": 0.6, "val_f1_torch_no_score_cut": 0.45}
    assert _postprocessing(None)["postprocessing"] is None


def test_a_score_cut_outside_zero_to_one_is_refused() -> None:
    import pytest

    from search.candidate import choose_on_validation

    cfg = {"export": {"choose_postprocessing": True, "thresholds": [0.5], "min_areas_px": [4], "min_scores": [0.0, 1.5]}}
    with pytest.raises(ValueError, match=r"min_scores .*\[0, 1\)"):
        choose_on_validation([], cfg, None)  # type: ignore[arg-type]
