"""An image without a georeference of its own, placed by ``--crs`` and ``--gsd`` without ``--origin``,
sits at the CRS's (0, 0): the Gulf of Guinea in EPSG:3857, open sea west of a UTM zone. ``hil run
--land-masks gshhg`` looked that place up, masked the image as all sea and counted it as masked,
though where it lies on the Earth is unknown (README: the coastline is not for an image placed only
by a gsd). The sample now records that its position is assumed, and the coastline leaves it unmasked,
counted with the images it could not mask, with the warning that says so. An ``--origin`` the user
gives, or the file's own georeference, is a real place and is still looked up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from flightsim.sources import Georef, open_source
from hil.__main__ import main
from hil.coastline import coastline_sea_mask

pytest.importorskip("roaring_landmask")

REPO = Path(__file__).resolve().parents[2]
# The Atlantic coast at Nouakchott (tests/hil/test_coastline.py): sea in the west, the Sahara in the east.
UTM28 = "EPSG:32628"
NOUAKCHOTT = (373000.0, 1993000.0)


def _plain_tif(path: Path, crs: str | None = None, transform: Affine | None = None) -> Path:
    """A 128 x 128 grey GeoTIFF, with no georeference unless ``crs`` and ``transform`` are given."""
    extra = {} if crs is None else {"crs": crs, "transform": transform}
    with rasterio.open(path, "w", driver="GTiff", width=128, height=128, count=1, dtype="uint8", **extra) as dst:
        dst.write(np.full((1, 128, 128), 20, np.uint8))
    return path


def test_an_image_placed_without_an_origin_has_no_place_to_look_up(tmp_path: Path) -> None:
    plain = _plain_tif(tmp_path / "plain.tif")
    for crs in ("EPSG:3857", UTM28):
        sample = open_source(str(plain), georef=Georef(250.0, None, crs))[0]
        assert sample.position_assumed and sample.units == "m"
        assert coastline_sea_mask(sample, "gshhg") is None  # was all sea: "masked"
    # an --origin the user gives is a real place: looked up, the shore found
    given = open_source(str(plain), georef=Georef(250.0, NOUAKCHOTT, UTM28))[0]
    sea = coastline_sea_mask(given, "gshhg")
    assert not given.position_assumed and sea is not None and sea[:, :60].all() and not sea[:, 75:].any()
    # a file's own georeference too, with or without a --gsd in place of its pixel size
    own = _plain_tif(tmp_path / "own.tif", UTM28, Affine(250.0, 0.0, NOUAKCHOTT[0], 0.0, -250.0, NOUAKCHOTT[1]))
    for georef in (Georef(), Georef(250.0)):
        sample = open_source(str(own), georef=georef)[0]
        assert not sample.position_assumed
        sea = coastline_sea_mask(sample, "gshhg")
        assert sea is not None and sea[:, :60].all() and not sea[:, 75:].any()


def test_hil_run_counts_an_assumed_position_as_not_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = _plain_tif(tmp_path / "plain.tif")
    assert main(["run", "--scene", str(plain), "--crs", "EPSG:3857", "--gsd", "10", "--model",
                 str(REPO / "models/default"), "--device", "CPU", "--land-masks", "gshhg", "--quiet",
                 "--report", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["land_masked"] == {"source": "gshhg", "samples_with_a_mask": 0, "detections_dropped": 0}
    out = capsys.readouterr().out
    assert "land masks gshhg: 0 of 1 image(s) masked" in out
    assert "warning: --land-masks gshhg masked no image" in out
