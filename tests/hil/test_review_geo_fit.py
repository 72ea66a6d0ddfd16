"""Review: the rig's ground-sample-distance check against the scene's own units, and its merge of
border pieces against the runtime's connectivity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine


@pytest.mark.parametrize("crs, transform", [
    ("EPSG:4326", Affine(2.7e-5, 0, 3.0, 0, -2.7e-5, 0.01)),       # about 3 m pixels, in degrees
    ("EPSG:2263", Affine(10.0, 0, 980000.0, 0, -10.0, 200000.0)),  # 10 US feet = 3.05 m pixels
    ("EPSG:32631", Affine(0, 3.0, 500000.0, 3.0, 0, 4000000.0)),   # 3 m pixels, grid turned by 90 degrees
])
def test_a_3_m_scene_suits_a_2_to_4_m_model_whatever_its_crs_units(tmp_path: Path, crs: str,
                                                                 transform: Affine) -> None:
    """hil run's fit check (strict_fit) must read metres per pixel as the runtime does
    (runtime.fit.tile_gsd_m): not the transform's ``a`` taken for metres, which is degrees in
    EPSG:4326, feet in a State Plane CRS and 0 on a grid turned by 90 degrees."""
    import hil
    from runtime.bundle import write_bundle
    from runtime.fit import tile_gsd_m
    from tests.conftest import make_brightness_bundle

    gsd = tile_gsd_m(tuple(transform)[:6], rasterio.crs.CRS.from_user_input(crs))
    assert gsd in (None, pytest.approx(3.0, rel=0.02))
    bundle = make_brightness_bundle(tmp_path / "b", size=64)
    trained = {"trained_for": {"modality": "optical", "gsd_m": [2.0, 4.0]}}
    manifest = {k: v for k, v in bundle.manifest.items() if k != "files"} | trained
    write_bundle(tmp_path / "m", bundle.files["model.xml"], bundle.files["model.bin"], manifest)
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=64, width=64, count=3, dtype="uint8",
                       crs=crs, transform=transform) as dst:
        dst.write(np.full((3, 64, 64), 15, np.uint8))
    # strict: a scene the check wrongly calls unfit is refused before a runtime starts
    report = hil.run(tmp_path / "s.tif", tmp_path / "m", tmp_path / "out", device="CPU", strict_fit=True,
                     modality="optical").report
    assert report["model_fit"]["warnings"] == []


@pytest.mark.parametrize("connectivity, vessels", [(8, 1), (4, 2)])
def test_the_rig_joins_border_pieces_as_the_runtime_joins_pixels(tmp_path: Path, connectivity: int,
                                                                 vessels: int) -> None:
    """Two bright blocks meeting only at a corner, on the border between two tiles: one vessel for a
    runtime vectorising with 8-connectivity, two with 4 (``[vectorize] connectivity``), and hil's
    merge of the border pieces must join them as the runtime would have (it joined any that touch)."""
    import json

    import hil
    from tests.conftest import make_brightness_bundle

    make_brightness_bundle(tmp_path / "b", size=64)
    pixels = np.full((3, 128, 128), 15, np.uint8)
    pixels[:, 80:90, 54:64] = 250
    pixels[:, 90:100, 64:74] = 250  # corner to corner across the border at column 64
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=128, width=128, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=Affine(3.0, 0, 500000.0, 0, -3.0, 4000000.0)) as dst:
        dst.write(pixels)
    config = tmp_path / "runtime.toml"
    config.write_text(f"[vectorize]\nconnectivity = {connectivity}\n")
    hil.run(tmp_path / "s.tif", tmp_path / "b", tmp_path / "out", device="CPU", runtime_config=config)
    features = json.loads((tmp_path / "out" / "detections.geojson").read_text())["features"]
    assert len(features) == vessels
