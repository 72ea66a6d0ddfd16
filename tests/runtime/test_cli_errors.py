"""``python -m runtime``: a wrong file on the command line is one ``error:`` line and exit status 2,
never a traceback (reviewer's defects 4, 5 and 11), and ``infer`` adapts an image's bands to the
model's as the rig does (defect 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from runtime.__main__ import main
from runtime.config import load_defaults


def _geotiff(path: Path, pixels: np.ndarray) -> Path:
    """Write ``pixels`` (bands, H, W) uint8 as a georeferenced GeoTIFF at ``path``."""
    with rasterio.open(path, "w", driver="GTiff", height=pixels.shape[1], width=pixels.shape[2],
                       count=pixels.shape[0], dtype="uint8", crs="EPSG:32633",
                       transform=Affine(0.5, 0, 4e5, 0, -0.5, 5e6)) as dst:
        dst.write(pixels)
    return path


def test_missing_config_file_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 5: a --config that does not exist is named, with the reason, not a FileNotFoundError."""
    assert main(["check", "--config", str(tmp_path / "none.toml"), "--model", str(tmp_path)]) == 2
    assert f"error: --config {tmp_path / 'none.toml'}: No such file or directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--config .*: Is a directory"):
        load_defaults(Path(__file__).parents[2] / "runtime" / "defaults.toml", tmp_path)


def test_check_of_a_missing_bundle_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 11: `runtime check` reports a wrong --model as `infer` and `serve` do (a BundleError)."""
    assert main(["check", "--model", str(tmp_path / "nonexist")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nonexist'}: not a bundle directory"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "model.xml").write_text("<net/>")
    assert main(["check", "--model", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'b'}: missing model.bin"


def test_infer_repeats_a_single_band_as_the_rig_does(tmp_path: Path, brightness_bundle: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 4: a one-band GeoTIFF into a three-band model is served with the band repeated (the
    rig's rule, runtime.bands), said in the output, instead of a TileRejected traceback."""
    pixels = np.zeros((1, 64, 64), dtype=np.uint8)
    pixels[:, 20:26, 10:40] = 255
    tif = _geotiff(tmp_path / "grey.tif", pixels)
    out = tmp_path / "v.geojson"
    assert main(["infer", "--model", str(brightness_bundle), "--input", str(tif), "--output", str(out),
                 "--device", "CPU"]) == 0, capsys.readouterr().err
    collection = json.loads(out.read_text())
    assert len(collection["features"]) == 1
    assert collection["bands"]["adaptation"] == "the single source band 'band1' repeated into 3 model bands"


def test_infer_without_a_band_rule_is_an_error_line(tmp_path: Path, brightness_bundle: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Defect 4: two bands into a three-band model: no rule applies, and the error says why."""
    tif = _geotiff(tmp_path / "two.tif", np.zeros((2, 32, 32), dtype=np.uint8))
    assert main(["infer", "--model", str(brightness_bundle), "--input", str(tif),
                 "--output", str(tmp_path / "v.geojson"), "--device", "CPU"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tif}: the scene has 2 bands ['band1', 'band2'], the model takes 3"), err
    assert "no rule applies" in err and "Traceback" not in err
