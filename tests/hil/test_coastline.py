"""Land masks from a coastline data set (hil.coastline, roaring-landmask) on a real coast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

import hil
from hil.__main__ import main
from hil.coastline import coastline_sea_mask
from tests.conftest import make_brightness_bundle, write_scene_with_truth

# An optional extra ('.[coastline]', which make test installs): without it there is nothing to test.
pytest.importorskip("roaring_landmask")

# The Atlantic coast at Nouakchott, Mauritania, runs north-south near 16.03 W at 18 N: sea to the
# west, the Sahara to the east. 128 x 128 pixels of 250 m in UTM zone 28N from 16.20 W, 18.02 N.
CRS, TRANSFORM = "EPSG:32628", Affine(250.0, 0.0, 373000.0, 0.0, -250.0, 1993000.0)


@pytest.fixture(scope="module")
def bright64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("b") / "bright64"
    make_brightness_bundle(out, size=64)
    return out


def _coast_scene(path: Path) -> tuple[Path, Path]:
    """A bright ship at sea (about 16.17 W) and a bright roof as long as a ship on land (15.96 W),
    the truth holding the ship only."""
    pixels = np.full((3, 128, 128), 20, dtype=np.uint8)
    truth = np.zeros((128, 128), dtype=np.uint8)
    pixels[:, 10:14, 15:35] = 250
    truth[10:14, 15:35] = 1
    pixels[:, 60:64, 100:120] = 250
    return write_scene_with_truth(path, pixels, truth, CRS, TRANSFORM)


@pytest.mark.slow
def test_the_coastline_drops_what_is_found_on_land_of_a_georeferenced_scene(tmp_path: Path, bright64: Path) -> None:
    scene, truth = _coast_scene(tmp_path)
    plain = hil.run(scene, bright64, tmp_path / "plain", truth=truth).report
    masked = hil.run(scene, bright64, tmp_path / "masked", truth=truth, land_masks="gshhg").report
    assert plain["n_detections"] == 2 and plain["f1"] == pytest.approx(2 / 3) and plain["vessel_iou"] == pytest.approx(0.5)
    assert masked["land_masked"] == {"source": "gshhg", "samples_with_a_mask": 1, "detections_dropped": 1}
    assert masked["f1"] == pytest.approx(1.0) and masked["vessel_iou"] == pytest.approx(1.0)
    kept = json.loads((tmp_path / "masked" / "detections.geojson").read_text())["features"]
    assert len(kept) == 1 and kept[0]["geometry"]["coordinates"][0][0][0] < 373000 + 250 * 40  # the one at sea


def test_the_coastline_mask_follows_the_shore_and_needs_a_georeference(monkeypatch: pytest.MonkeyPatch) -> None:
    import hil.coastline
    from flightsim.sources.base import Sample

    sample = Sample("coast", 128, 128, TRANSFORM, rasterio.crs.CRS.from_string(CRS), ["r", "g", "b"], "uint8")
    sea = coastline_sea_mask(sample, "gshhg")
    assert sea is not None and sea.shape == (128, 128)
    assert sea[:, :60].all() and not sea[:, 75:].any()  # the shore lies between 16.05 and 16.02 W
    # A large image is looked up every few pixels and filled back to full size.
    monkeypatch.setattr(hil.coastline, "MAX_LOOKUPS", 1024)
    coarse = coastline_sea_mask(sample, "gshhg")
    assert coarse is not None and coarse.shape == (128, 128) and (coarse == sea).mean() > 0.95
    assert coarse[:, :56].all() and not coarse[:, 80:].any()
    pixel_grid = Sample("chip", 64, 64, Affine.identity(), None, ["r"], "uint8")
    assert coastline_sea_mask(pixel_grid, "gshhg") is None
    with pytest.raises(ValueError, match="valid: \\['gshhg', 'osm'\\]"):
        coastline_sea_mask(sample, "naturalearth")


def test_the_cli_takes_a_coastline_name_and_refuses_anything_else(tmp_path: Path, bright64: Path) -> None:
    scene, truth = _coast_scene(tmp_path)
    args = ["run", "--scene", str(scene), "--truth", str(truth), "--model", str(bright64), "--quiet"]
    assert main([*args, "--report", str(tmp_path / "a"), "--land-masks", "gshhg"]) == 0
    assert json.loads((tmp_path / "a" / "report.json").read_text())["f1"] == pytest.approx(1.0)
    assert main([*args, "--report", str(tmp_path / "b"), "--land-masks", "gshh"]) == 2


@pytest.mark.parametrize("shore", [51.0, 52.0, 53.7, 57.5])  # the old lookup: 9, 8, 6, 2 px off
def test_a_coarse_lookup_places_the_shore_within_half_a_step(monkeypatch: pytest.MonkeyPatch, shore: float) -> None:
    """Looked up every ``step`` pixels, each block is looked up at its centre: the shore filled back
    is off by at most step / 2 pixels (at each block's first pixel it was off by up to step - 1)."""
    import hil.coastline
    from flightsim.sources.base import Sample

    class Straight:
        """Land east of x = ``shore`` (a straight north-south coast), looked up as roaring-landmask is."""

        def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
            return lon > shore

    monkeypatch.setattr(hil.coastline, "_landmask", lambda coastline: Straight())
    # EPSG:4326 with x = column (pixel centres at column + 0.5): the lookups land where they are asked
    sample = Sample("t", 100, 97, Affine(1.0, 0, 0, 0, -1.0, 80), rasterio.crs.CRS.from_epsg(4326), ["b"], "uint8")
    exact = coastline_sea_mask(sample, "gshhg")
    monkeypatch.setattr(hil.coastline, "MAX_LOOKUPS", 100)  # step 10
    coarse = coastline_sea_mask(sample, "gshhg")
    assert exact is not None and coarse is not None and coarse.shape == exact.shape == (100, 97)
    first_land = lambda sea: int(np.argmin(sea[0]))  # noqa: E731
    assert abs(first_land(coarse) - first_land(exact)) <= 5
    assert (coarse != exact).sum() <= 5 * 100  # at most 5 columns of each row


def test_synthetic_open_sea_scenes_are_placed_at_sea_by_the_coastline() -> None:
    """The synthetic scenes draw only open sea (a coast of their own drawn into the pixels), so the place
    their georeference gives them must be sea too: `hil run --scene synthetic --land-masks gshhg` dropped
    every vessel of the demo scene (seed 7), whose origin fell on Mallorca, as did about 9% of seeds."""
    import rasterio.warp

    from flightsim.sources import open_source
    from flightsim.synthetic.model import defaults
    from hil.coastline import _landmask

    demo = open_source("synthetic", seed=7)[0]
    sea = coastline_sea_mask(demo, "gshhg")
    assert sea is not None and sea.all()
    # Every origin the config can draw, and the scene that reaches 40 km east and south of it.
    cfg = defaults()
    (x0, x1), (y0, y1) = cfg["origin_x_m"], cfg["origin_y_m"]
    xs, ys = np.meshgrid(np.linspace(x0, x1 + 40_000.0, 120), np.linspace(y0 - 40_000.0, y1, 240))
    lon, lat = rasterio.warp.transform(cfg["crs"], "EPSG:4326", xs.ravel().tolist(), ys.ravel().tolist())
    for coastline in ("gshhg", "osm"):
        land = _landmask(coastline).contains_many(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        assert not np.asarray(land).any(), coastline


def test_a_scene_in_an_engineering_crs_is_not_looked_up_on_the_coastline(tmp_path: Path, bright64: Path) -> None:
    """A GeoTIFF may carry an engineering CRS (a site's own grid, LOCAL_CS): the runtime measures it in
    pixels, but the coastline tried to reproject it to longitude, latitude, and the run failed at its
    scoring (CPLE_NotSupportedError, after every tile was processed)."""
    from hil.coastline import on_the_earth

    crs = rasterio.crs.CRS.from_wkt('LOCAL_CS["harbour grid",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
                                    'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    pixels = np.full((3, 64, 64), 20, dtype=np.uint8)
    pixels[:, 10:14, 15:35] = 250
    scene = tmp_path / "local.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs=crs,
                       transform=Affine(3.0, 0.0, 0.0, 0.0, -3.0, 192.0)) as dst:
        dst.write(pixels)
    assert not on_the_earth(crs)
    report = hil.run(scene, bright64, tmp_path / "r", land_masks="gshhg").report
    assert report["land_masked"] == {"source": "gshhg", "samples_with_a_mask": 0, "detections_dropped": 0}
    assert report["n_detections"] == 1
