"""What ``hil run`` writes into detections.geojson, read as QGIS/GDAL read it."""

from __future__ import annotations

import json
from pathlib import Path

from rasterio.crs import CRS
from shapely.geometry import shape

import hil
from flightsim.sources import open_source
from hil.merge import owned_box

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
        hil.run(scene, brightness_bundle, out, device="NOPE")
    assert sorted(p.name for p in out.iterdir()) == ["runtime.log"], "the first run's outputs are left beside the second's log"
