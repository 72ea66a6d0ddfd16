"""Review 24: a ``hil run --runtime`` after a bare ``flightsim stream`` counted the stream's results as
its own: ``results_acked`` 32 for 16 tiles.

A bare stream takes no results, so the runtime holds them for a ground (``[delivery] ground_ack``);
the next run's collector takes them and acknowledges them (or the runtime would hold them for
ever), and the runtime's counter, taken since the run's uplink (review 21), counted them in. Now the
report's ``results_acked`` is the run's own results, and ``earlier_results_acked`` says how many of
a runtime's earlier results the run acknowledged. A real runtime, the real ``flightsim stream``
command, the real rig.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

import hil
from flightsim.__main__ import main as flightsim_main
from runtime.server import Runtime
from tests.conftest import write_scene_with_truth


def test_results_an_earlier_stream_left_on_the_runtime_are_not_the_runs(
        tmp_path: Path, running_runtime: Runtime, brightness_bundle: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pixels = np.full((3, 128, 128), 20, np.uint8)
    truth = np.zeros((128, 128), np.uint8)
    pixels[:, 30:36, 50:90], truth[30:36, 50:90] = 240, 1  # one ship across a tile border
    scene, truth_tif = write_scene_with_truth(tmp_path, pixels, truth, "EPSG:32632",
                                              Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0))
    # 4 tiles streamed, accepted, and their results never taken: the runtime holds them for a ground
    assert flightsim_main(["stream", "--scene", str(scene), "--tiles", running_runtime.endpoints["tiles"],
                           "--tile-size", "64"]) == 0
    assert "sent 4, accepted 4" in capsys.readouterr().out
    r = hil.run(scene, brightness_bundle, tmp_path / "run", truth=truth_tif,
                runtime=running_runtime.endpoints["control"]).report
    assert r["tiles_processed"] == r["tiles_sent"] == 4 and r["f1"] == 1.0
    assert r["delivery"]["ground_ack"] and r["delivery"]["awaiting_ground"] == 0, r["delivery"]
    assert r["unknown_results"] == 4  # the stream's results came to this run's collector ...
    assert r["delivery"]["results_acked"] == 4, r["delivery"]  # ... but the run's own count is its 4 tiles
    assert r["delivery"]["earlier_results_acked"] == 4, r["delivery"]  # and those it acknowledged are said
