"""Review 24: a GeoTIFF georeferenced only by ground control points was read as a pixel grid.

GDAL reports such a file (a Sentinel-1 GRD GeoTIFF, a chart registered by hand) with no CRS and the
identity transform, its georeference being its GCPs; ``runtime infer`` and the rig's readers took it
for an image without georeference, and its vessels came out in pixels, ``units: "px"``, without a
word. Now the affine transform the GCPs fit is its georeference, and GCPs no affine transform fits
within a pixel are refused naming the file. Real GeoTIFFs written by rasterio, the real OpenVINO
brightness model, the real rig.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS

import hil
from flightsim.sources import open_source
from runtime import offline
from tests.conftest import make_brightness_bundle

UTM = CRS.from_epsg(32631)
X0, Y0, GSD = 500_000.0, 4_000_000.0, 3.0  # upper-left corner and metres per pixel of the scene
SIZE = 128


def _gcp(col: float, row: float, off_px: float = 0.0) -> GroundControlPoint:
    """The GCP of pixel (col, row) on the 3 m north-up UTM grid, its map point ``off_px`` pixels east."""
    return GroundControlPoint(row=row, col=col, x=X0 + (col + off_px) * GSD, y=Y0 - row * GSD)


def _scene(path: Path, gcps: list[GroundControlPoint], crs: CRS | None = UTM) -> Path:
    """A 3-band GeoTIFF with one bright 40 x 6 pixel east-west ship, georeferenced by ``gcps`` alone."""
    pixels = np.full((3, SIZE, SIZE), 15, np.uint8)
    pixels[:, 60:66, 20:60] = 250
    with rasterio.open(path, "w", driver="GTiff", height=SIZE, width=SIZE, count=3, dtype="uint8", gcps=gcps,
                       crs=crs) as dst:
        dst.write(pixels)
    with rasterio.open(path) as src:  # the case: GDAL says no CRS and no geotransform, the GCPs hold it all
        assert src.crs is None and src.transform.is_identity and len(src.gcps[0]) == len(gcps)
    return path


GRID_GCPS = [_gcp(c, r) for c in (0, 64, 128) for r in (0, 64, 128)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gcps") / "b"
    make_brightness_bundle(out, size=64)
    return out


def _infer(bundle: Path, path: Path) -> dict:
    return offline.infer_file(bundle, path, "CPU", {"min_area_px": 4, "simplify_px": 0.0, "connectivity": 8})


def test_infer_places_and_measures_vessels_by_the_gcps(bundle: Path, tmp_path: Path) -> None:
    out = _infer(bundle, _scene(tmp_path / "gcps.tif", GRID_GCPS))
    assert out["crs"]["properties"]["name"] == "EPSG:32631"
    [vessel] = out["features"]
    props = vessel["properties"]
    assert props["units"] == "m"
    assert props["length_m"] == pytest.approx(40 * GSD, rel=0.05)  # not 40 "px"
    cx, cy = props["centroid"]
    assert cx == pytest.approx(X0 + 40 * GSD, abs=GSD) and cy == pytest.approx(Y0 - 63 * GSD, abs=GSD)


def test_the_rigs_reader_takes_the_gcps_fit_as_the_files_own_georeference(tmp_path: Path) -> None:
    sample = open_source(str(_scene(tmp_path / "gcps.tif", GRID_GCPS)))[0]
    assert sample.crs == UTM and sample.units == "m"
    assert tuple(sample.transform)[:6] == pytest.approx((GSD, 0.0, X0, 0.0, -GSD, Y0))
    assert not sample.position_assumed
    assert any("ground control points" in note for note in sample.notes), sample.notes


def test_a_hil_run_on_a_gcp_scene_reports_metres(bundle: Path, tmp_path: Path) -> None:
    report = hil.run(_scene(tmp_path / "gcps.tif", GRID_GCPS), bundle, tmp_path / "r").report
    assert report["units"] == "m" and report["n_detections"] == 1


@pytest.mark.parametrize("gcps, why", [
    # the middle GCP's map point 3 pixels off its grid: no affine transform fits within a pixel
    ([*(_gcp(c, r) for c in (0, 128) for r in (0, 128)), _gcp(64, 64, off_px=3 * 5 / 4)],
     "no affine transform fits within 1 px"),
    ([_gcp(0, 0), _gcp(64, 64), _gcp(128, 128)], "lie on one line"),
    ([_gcp(0, 0), _gcp(128, 128)], "needs at least 3"),
])
def test_gcps_no_affine_transform_fits_are_not_used_and_the_reader_says_why(
        bundle: Path, tmp_path: Path, gcps: list[GroundControlPoint], why: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The pixel grid, as before the GCPs were read, but said: a scene that ran before still runs."""
    path = _scene(tmp_path / "bent.tif", gcps)
    with caplog.at_level("WARNING", logger="runtime"):
        _infer(bundle, path)
    assert any(re.search(f"bent.tif: .*{why}.*pixel grid", r.getMessage()) for r in caplog.records), caplog.text
    sample = open_source(str(path))[0]
    assert sample.crs is None and any(re.search(f"not used .*{why}.*pixel grid", n) for n in sample.notes), sample.notes
