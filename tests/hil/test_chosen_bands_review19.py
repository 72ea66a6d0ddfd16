"""``hil run --bands``: the user's word that the source bands chosen are the model's. The tiles carried
the source bands' names, and a runtime refuses a tile naming the model's bands at other positions
(``bad_shape``), so a false-colour choice (a red, green, near-infrared GeoTIFF fed to a red, green,
blue model as near-infrared, red, green: ``--bands 3,1,2``) had every tile rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

import hil
from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle
from tests.conftest import make_brightness_bundle


def _rgb_bundle(root: Path) -> Path:
    plain = make_brightness_bundle(root / "plain", size=64)
    manifest = rewritable_manifest(read_bundle(root / "plain"))
    manifest["input"]["bands"] = ["red", "green", "blue"]
    rewrite_bundle(plain, root / "rgb", manifest)
    return root / "rgb"


def test_bands_the_user_chose_reach_the_runtime_as_the_models(tmp_path: Path) -> None:
    bundle = _rgb_bundle(tmp_path)
    scene = tmp_path / "red_green_nir.tif"
    pixels = np.full((3, 96, 96), 20, np.uint8)
    pixels[:, 40:48, 40:60] = 250
    with rasterio.open(scene, "w", driver="GTiff", height=96, width=96, count=3, dtype="uint8",
                       crs="EPSG:32631", transform=Affine(3.0, 0, 500000.0, 0, -3.0, 4000000.0)) as dst:
        dst.write(pixels)
        for i, name in enumerate(["red", "green", "nir"], start=1):
            dst.set_band_description(i, name)
    chosen = hil.run(str(scene), bundle, tmp_path / "chosen", device="CPU", bands=[3, 1, 2]).report
    assert chosen["tiles_sent"] > 0 and chosen["tiles_rejected"] == 0, chosen["rejected_by_reason"]
    assert chosen["tiles_processed"] == chosen["tiles_sent"] and chosen["n_detections"] == 1
    # a sender that names them as the source does (flightsim's tiles without band_names) is refused
    from flightsim.sources import open_source
    from flightsim.tiles import tile_sample
    from runtime.preprocess import Preprocessor
    from runtime.protocol import TileRejected

    tile = next(tile_sample(open_source(str(scene))[0], 64, band_index=[2, 0, 1]))
    assert tile.bands == ["nir", "red", "green"]
    prep = Preprocessor(read_bundle(bundle).manifest["input"], (1, 3, 64, 64))
    try:
        prep(tile.pixels, {"bands": tile.bands})
    except TileRejected as exc:
        assert exc.reason.value == "bad_shape"
    else:
        raise AssertionError("a tile naming the model's bands at other positions was taken")
