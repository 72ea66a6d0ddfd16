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
