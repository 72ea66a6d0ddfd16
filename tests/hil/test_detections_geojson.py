"""What ``hil run`` writes into detections.geojson, read as QGIS/GDAL read it."""

from __future__ import annotations

import json
from pathlib import Path

from rasterio.crs import CRS
from shapely.geometry import shape

import hil
from flightsim.sources import open_source
from hil.geojson import own_geometry
from hil.merge import owned_box
from runtime.server import Runtime

REPO = Path(__file__).resolve().parents[2]


def test_a_multi_sample_run_in_one_crs_names_that_crs(tmp_path: Path) -> None:
    """Samples that share one CRS (the seeds of a synthetic set, a data set placed by --gsd): the
    file says which, or GDAL takes its UTM metres for WGS 84 degrees (RFC 7946's default for a
    GeoJSON without a ``crs``) and every vessel lands off the Earth."""
    spec = "synthetic:seeds=3-4,size=256"
    hil.run(spec, REPO / "models" / "default", tmp_path / "out", device="CPU")
    g = json.loads((tmp_path / "out" / "detections.geojson").read_text())
    samples = {s.name: s for s in open_source(spec)}
    assert len({s.crs.to_string() for s in samples.values()}) == 1 and g["features"]
    assert g["crs"] is not None, "a multi-sample run in one CRS wrote no crs: GDAL reads it as EPSG:4326"
    assert CRS.from_user_input(g["crs"]["properties"]["name"]) == next(iter(samples.values())).crs
    for f in g["features"]:  # each vessel over its own sample, in the CRS the file names
        s = samples[f["properties"]["scene"]]
        assert owned_box(s.transform, (0, 0, s.height, s.width)).contains(shape(f["geometry"]))



def test_a_failed_run_leaves_no_report_of_the_run_before(tmp_path: Path, brightness_bundle: Path) -> None:
    """A second run into the same folder that fails once its runtime is started (here: a device the
    runtime refuses) leaves its runtime.log; a report.json beside it would be the first run's, read
    by a script as this one's."""
    import numpy as np
    import pytest
    from affine import Affine

    from tests.conftest import write_scene_with_truth

    pixels = np.full((3, 64, 64), 20, np.uint8)
    pixels[:, 10:18, 10:40] = 250
    scene, _ = write_scene_with_truth(tmp_path, pixels, (pixels[0] > 100).astype(np.uint8), "EPSG:32632",
                                      Affine(2.0, 0.0, 600000.0, 0.0, -2.0, 5000000.0))
    out = tmp_path / "out"
    hil.run(scene, brightness_bundle, out, device="CPU")
    with pytest.raises(RuntimeError, match="not available"):
        hil.run(scene, brightness_bundle, out, device="MYRIAD.9")  # a stick not attached here
    assert sorted(p.name for p in out.iterdir()) == ["runtime.log"], "the first run's outputs are left beside the second's log"


def _bright_scene(folder: Path, name: str, crs: str | None, transform: object) -> Path:
    import numpy as np
    import rasterio

    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.full((3, 64, 64), 20, np.uint8)
    pixels[:, 10:18, 10:40] = 250
    profile = dict(driver="GTiff", height=64, width=64, count=3, dtype="uint8", transform=transform)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
        dst.write(pixels)
    return folder / f"{name}.tif"


def test_samples_in_two_utm_zones_are_written_in_lon_lat(tmp_path: Path, brightness_bundle: Path) -> None:
    """Two scenes on the Earth in different CRSs (two UTM zones): one file cannot name both, and a
    file naming none is read as WGS 84 degrees, which put every vessel's UTM metres off the Earth;
    the vessels are written in lon/lat and each feature names its scene's CRS."""
    from affine import Affine
    from rasterio.warp import transform_geom

    west = _bright_scene(tmp_path / "a", "west", "EPSG:32632", Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0))
    east = _bright_scene(tmp_path / "b", "east", "EPSG:32633", Affine(2.0, 0, 300000.0, 0, -2.0, 5000000.0))
    result = hil.run(open_source([str(west), str(east)]), brightness_bundle, tmp_path / "out", device="CPU")
    g = json.loads((tmp_path / "out" / "detections.geojson").read_text())
    assert result.report["detections_crs"] == "crs84"
    assert CRS.from_user_input(g["crs"]["properties"]["name"]) == CRS.from_user_input("OGC:CRS84")
    assert {f["properties"]["scene"].rpartition("/")[2] for f in g["features"]} == {"west", "east"}
    for f in g["features"]:
        lon, lat = shape(f["geometry"]).centroid.coords[0]
        assert 8 < lon < 16 and 44 < lat < 46, (f["properties"]["scene"], lon, lat)
        back = shape(transform_geom("OGC:CRS84", f["properties"]["crs"], f["geometry"]))
        assert own_geometry(f, g).equals_exact(back, 1e-6)
        tif = west if f["properties"]["scene"].endswith("west") else east
        s = next(iter(open_source(str(tif))))
        assert owned_box(s.transform, (0, 0, s.height, s.width)).buffer(1.0).contains(back)


def test_a_pixel_grid_beside_a_georeferenced_scene_is_described_feature_by_feature(
        tmp_path: Path, brightness_bundle: Path) -> None:
    """A scene without a CRS (pixel coordinates) beside one in UTM: no CRS holds both, so the file
    names none and each feature says which CRS its coordinates are in (None: pixels)."""
    from affine import Affine

    utm = _bright_scene(tmp_path / "a", "utm", "EPSG:32632", Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0))
    grid = _bright_scene(tmp_path / "b", "grid", None, Affine.identity())
    result = hil.run(open_source([str(utm), str(grid)]), brightness_bundle, tmp_path / "out", device="CPU")
    g = json.loads((tmp_path / "out" / "detections.geojson").read_text())
    assert result.report["detections_crs"] == "per-feature" and g["crs"] is None
    crs_by_scene = {f["properties"]["scene"].rpartition("/")[2]: f["properties"]["crs"] for f in g["features"]}
    assert crs_by_scene["grid"] is None and CRS.from_user_input(crs_by_scene["utm"]) == CRS.from_epsg(32632)


def test_a_run_on_a_runtime_already_running_leaves_no_runtime_log_of_the_run_before(
        tmp_path: Path, brightness_bundle: Path, running_runtime: Runtime) -> None:
    """``hil run --runtime`` into a folder where a run started its own runtime: that run's
    runtime.log beside this run's report would be read as the log of the runtime this run used."""
    from affine import Affine

    scene = _bright_scene(tmp_path / "a", "utm", "EPSG:32632", Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0))
    out = tmp_path / "out"
    hil.run(str(scene), brightness_bundle, out, device="CPU")
    assert (out / "runtime.log").exists()
    hil.run(str(scene), brightness_bundle, out, runtime=running_runtime.endpoints["control"])
    assert sorted(p.name for p in out.iterdir()) == ["detections.geojson", "overview.png", "report.json"]
