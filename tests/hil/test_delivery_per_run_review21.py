"""A report's ``delivery`` counts are the run's: a runtime already running (``hil run --runtime``) had
the results of every earlier run in its counters, and the second run of 4 tiles reported 8 acked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine

import hil
from runtime.server import Runtime
from tests.conftest import write_scene_with_truth


def test_the_delivery_counts_of_a_second_run_on_one_runtime_are_its_own(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path) -> None:
    pixels = np.full((3, 128, 128), 20, np.uint8)
    truth = np.zeros((128, 128), np.uint8)
    pixels[:, 30:36, 50:90], truth[30:36, 50:90] = 240, 1  # one ship across a tile border
    scene, truth_tif = write_scene_with_truth(tmp_path, pixels, truth, "EPSG:32632",
                                              Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0))
    for run in ("first", "second"):
        r = hil.run(scene, brightness_bundle, tmp_path / run, truth=truth_tif,
                    runtime=running_runtime.endpoints["control"]).report
        assert r["tiles_processed"] == r["tiles_sent"] == 4 and r["f1"] == 1.0, run
        assert r["delivery"]["ground_ack"] and r["delivery"]["awaiting_ground"] == 0, run
        assert r["delivery"]["results_acked"] == 4, (run, r["delivery"])
        assert r["delivery"]["results_undeliverable"] == 0 and r["delivery"]["bad_acks"] == 0, (run, r["delivery"])
