"""models/default was trained on 8-bit synthetic counts (docs/models.md: "uint8 RGB counts"; its
normalisation, mean 32-58 and std 32-35, is 8-bit statistics), but its manifest did not say so and it
has no golden tile to stand in: 16-bit counts went to it normalised with 8-bit statistics with no
``scene_does_not_fit`` from the runtime (README, "Pick by what the payload sees")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.crs import CRS

from runtime.bundle import read_bundle
from runtime.fit import SceneFit, manifest_trained_for

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_every_shipped_model_says_the_counts_it_was_trained_on() -> None:
    for bundle_dir in sorted(p.parent for p in MODELS.glob("*/manifest.json")):
        counts = manifest_trained_for(read_bundle(bundle_dir).manifest).get("counts")
        assert counts, f"{bundle_dir.name}: trained_for says no count type, so no tile's counts are checked"


def test_16_bit_tiles_to_the_demo_model_are_named() -> None:
    bundle = read_bundle(MODELS / "default")
    norm = bundle.manifest["input"]["normalization"]
    assert max(np.asarray(norm["mean"]) + 3 * np.asarray(norm["std"])) < 256  # 8-bit statistics
    header = {"scene_id": "s", "transform": [3.0, 0.0, 5e5, 0.0, -3.0, 4e6], "dtype": "uint16"}
    warnings, new = SceneFit().check(bundle.id, manifest_trained_for(bundle.manifest), header, CRS.from_epsg(32631))
    assert new and any("uint16" in w for w in warnings), warnings
    header["dtype"] = "uint8"
    assert SceneFit().check(bundle.id, manifest_trained_for(bundle.manifest), header, CRS.from_epsg(32631))[0] == []
