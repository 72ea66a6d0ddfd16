"""A candidate whose IR holds an op the Myriad X cost model does not price: the search's scores of
it (search.candidate.hil_scores, through a real hil run on the twin) carry the op, so its estimated
latency is not taken as meeting the target (search.fitness)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from search.candidate import hil_scores
from search.data import Normalization
from search.dataset import SearchData
from search.fitness import latency_used
from tests.runtime.test_latency_guards import _sin_bundle


def _scene(folder: Path, size: int = 32) -> None:
    folder.mkdir(parents=True)
    profile = {"driver": "GTiff", "width": size, "height": size, "crs": "EPSG:32631",
               "transform": Affine(3, 0, 5e5, 0, -3, 4.2e6)}
    with rasterio.open(folder / "scene.tif", "w", count=3, dtype="uint8", **profile) as dst:
        dst.write(np.random.default_rng(0).integers(0, 255, (3, size, size), dtype=np.uint8))
    with rasterio.open(folder / "truth_mask.tif", "w", count=1, dtype="uint8", **profile) as dst:
        dst.write(np.zeros((1, size, size), np.uint8))


def test_scores_of_a_candidate_with_an_unpriced_op_name_it_and_its_estimate_is_refused(tmp_path: Path) -> None:
    bundle = _sin_bundle(tmp_path / "sin")
    _scene(tmp_path / "data" / "val" / "seed_0")
    data = SearchData(tmp_path / "data", (), (0,), Normalization((0.0,) * 3, (255.0,) * 3))
    scores = hil_scores(bundle, data, tmp_path / "reports", "myriadx-emu")
    assert scores["unpriced_ops"] == ["Sin"]
    assert scores["estimated_latency_ms"] is not None
    value, how = latency_used({"device_metrics": scores}, "estimated")
    assert "Sin" in how and "not accepted" in how
