"""``python -m runtime``: the offline ``infer`` command and its errors, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

REPO = Path(__file__).resolve().parents[2]


def _runtime(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_infer_geotiff_merges_a_ship_across_tiles(tmp_path: Path, brightness_bundle: Path) -> None:
    pixels = np.zeros((3, 100, 150), dtype=np.uint8)
    pixels[:, 40:46, 50:110] = 255  # 60 px long, crosses the 64 px tile border at column 64
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=100, width=150, count=3,
                       dtype="uint8", crs="EPSG:32633", transform=Affine(0.5, 0, 4e5, 0, -0.5, 5e6)) as dst:
        dst.write(pixels)
    proc = _runtime("infer", "--model", str(brightness_bundle), "--input", str(tmp_path / "s.tif"),
                    "--output", str(tmp_path / "v.geojson"))
    assert proc.returncode == 0, proc.stderr
    collection = json.loads((tmp_path / "v.geojson").read_text())
    [vessel] = collection["features"]
    assert vessel["properties"]["length_m"] == 30.0 and vessel["properties"]["width_m"] == 3.0
    assert vessel["properties"]["pieces"] == 2
    assert collection["numerics"]["inference_precision"] == "f32"


def test_infer_npy_without_georeferencing_is_in_pixels(tmp_path: Path, brightness_bundle: Path) -> None:
    pixels = np.zeros((3, 64, 64), dtype=np.uint16)
    pixels[:, 5:10, 5:25] = 255
    np.save(tmp_path / "t.npy", pixels)
    proc = _runtime("infer", "--model", str(brightness_bundle), "--input", str(tmp_path / "t.npy"),
                    "--output", str(tmp_path / "v.geojson"))
    assert proc.returncode == 0, proc.stderr
    [vessel] = json.loads((tmp_path / "v.geojson").read_text())["features"]
    assert vessel["properties"]["units"] == "px" and vessel["properties"]["length_m"] == 20.0


def test_bad_inputs_are_clear_errors(tmp_path: Path, brightness_bundle: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"not an image")
    proc = _runtime("infer", "--model", str(brightness_bundle), "--input", str(tmp_path / "x.png"),
                    "--output", str(tmp_path / "v.geojson"))
    assert proc.returncode == 2 and "not a readable image" in proc.stderr and "Traceback" not in proc.stderr
    proc = _runtime("infer", "--model", str(tmp_path), "--input", str(tmp_path / "x.png"),
                    "--output", str(tmp_path / "v.geojson"))
    assert proc.returncode == 2 and "missing manifest.json" in proc.stderr


def test_infer_names_an_image_the_model_was_not_trained_for(tmp_path: Path, brightness_bundle: Path) -> None:
    """16-bit counts to a model trained on 8-bit ones: served, and said, in the output and on stderr."""
    from runtime.bundle import read_bundle, rewritable_manifest, rewrite_bundle

    bundle = read_bundle(brightness_bundle)
    manifest = rewritable_manifest(bundle)
    manifest["trained_for"] = {"modality": "sar", "gsd_m": [0.5, 15.0], "counts": ["uint8"]}
    rewrite_bundle(bundle, tmp_path / "m", manifest)
    pixels = np.zeros((3, 64, 64), dtype=np.uint16)
    pixels[:, 5:10, 5:25] = 4000
    np.save(tmp_path / "t.npy", pixels)
    proc = _runtime("infer", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "t.npy"),
                    "--output", str(tmp_path / "v.geojson"))
    assert proc.returncode == 0, proc.stderr
    [warning] = json.loads((tmp_path / "v.geojson").read_text())["fit"]["warnings"]
    assert "uint16" in warning and "uint8" in warning and warning in proc.stderr
    np.save(tmp_path / "t8.npy", (pixels // 16).astype(np.uint8))
    proc = _runtime("infer", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "t8.npy"),
                    "--output", str(tmp_path / "v8.geojson"))
    assert json.loads((tmp_path / "v8.geojson").read_text())["fit"]["warnings"] == [] and "warning" not in proc.stderr
