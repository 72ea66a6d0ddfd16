"""Golden tile in the bundle: an uplink whose known tile does not reproduce is refused, the old
model keeps serving; one that does is installed with its golden tile."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest

from runtime.bundle import GOLDEN_FILE, BundleError, read_bundle, sha256, write_bundle
from runtime.client import ControlClient, ControlError
from runtime.golden import with_golden
from hil.runtime_proc import RuntimeProcess
from tests.conftest import make_brightness_bundle
from tests.runtime.test_uplink import still_serves


def _ship_tile() -> np.ndarray:
    tile = np.zeros((3, 64, 64), np.uint8)
    tile[:, 10:20, 5:45] = 255
    return tile


def test_a_golden_bundle_round_trips_and_reproduces_on_cpu_and_twin(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "b")
    bundle = with_golden(tmp_path / "b", _ship_tile())
    assert bundle.manifest["golden"]["vessel_pixels"] == 400 and GOLDEN_FILE in bundle.manifest["files"]
    again = read_bundle(tmp_path / "b")
    assert again.files[GOLDEN_FILE] == bundle.files[GOLDEN_FILE] and again.frames()[3] == bundle.files[GOLDEN_FILE]
    from runtime.device import open_device
    from runtime.golden import check_golden
    from runtime.preprocess import Preprocessor

    for device in ("CPU", "myriadx-emu"):
        adapter = open_device(again, device, lambda *_: None, infer_requests=1)
        agreement = check_golden(again, adapter, Preprocessor(again.manifest["input"], adapter.input_shape))
        adapter.close()
        assert agreement is not None and agreement["mask_iou"] == 1.0


def test_a_golden_table_without_its_file_or_the_reverse_is_malformed(tmp_path: Path) -> None:
    bundle = make_brightness_bundle(tmp_path / "b")
    manifest = {k: v for k, v in bundle.manifest.items() if k not in ("files", "created")}
    with pytest.raises(BundleError, match="golden"):
        write_bundle(tmp_path / "c", bundle.files["model.xml"], bundle.files["model.bin"],
                     {**manifest, "golden": {"max_mean_abs": 0.02, "min_mask_iou": 0.9}})


def test_a_golden_tile_without_its_band_axis_is_refused_saying_bands_h_w(tmp_path: Path) -> None:
    """A 2-D (H, W) tile failed in the preprocessing with "not enough values to unpack": refused
    with a ValueError when written, and a BundleError when a bundle carries one."""
    make_brightness_bundle(tmp_path / "b")
    with pytest.raises(ValueError, match=r"\(bands, H, W\).*tile\[None\]"):
        with_golden(tmp_path / "b", _ship_tile()[0], out_dir=tmp_path / "g", require_vessels=False)
    from runtime.device import open_device
    from runtime.golden import check_golden
    from runtime.preprocess import Preprocessor

    bundle = with_golden(tmp_path / "b", _ship_tile(), out_dir=tmp_path / "g")
    flat = io.BytesIO()
    np.savez_compressed(flat, tile=_ship_tile()[0], expected=np.zeros((64, 64), np.float16))
    # as a bundle whose golden.npz holds a 2-D tile would be held after its checksums passed
    flat_bundle = dataclasses.replace(bundle, files={**bundle.files, GOLDEN_FILE: flat.getvalue()})
    adapter = open_device(flat_bundle, "CPU", lambda *_: None, infer_requests=1)
    try:
        with pytest.raises(BundleError, match=r"must be \(bands, H, W\) counts; got shape \(64, 64\)"):
            check_golden(flat_bundle, adapter, Preprocessor(flat_bundle.manifest["input"], adapter.input_shape))
    finally:
        adapter.close()


def test_a_golden_tile_the_model_cannot_take_is_a_bundle_error_naming_it(tmp_path: Path) -> None:
    """A golden tile with another band count (or too large, or of counts the input type cannot hold)
    was refused by the preprocessing with a TileRejected: ``serve --model`` printed a traceback, an
    uplink was refused with "tile is 4x64x64" (what tile? the ground sent none), and a start-up
    took it for a failure of the device, not of the bundle."""
    import subprocess
    import sys
    import tempfile

    make_brightness_bundle(tmp_path / "b")
    source = read_bundle(tmp_path / "b")
    tile = io.BytesIO()
    np.savez_compressed(tile, tile=np.full((4, 64, 64), 200, np.uint8), expected=np.ones((64, 64), np.float16))
    manifest = {k: v for k, v in json.loads(source.manifest_bytes).items() if k not in ("format", "files", "created")}
    manifest["golden"] = {"file": GOLDEN_FILE, "max_mean_abs": 0.02, "min_mask_iou": 0.9, "dtype": "uint8"}
    write_bundle(tmp_path / "bad", source.files["model.xml"], source.files["model.bin"], manifest,
                 {GOLDEN_FILE: tile.getvalue()})
    from runtime.acceptance import acceptance_test
    from runtime.device import open_device

    bad = read_bundle(tmp_path / "bad")  # its checksums are good: only the tile is wrong for the model
    adapter = open_device(bad, "CPU", lambda *_: None, infer_requests=1)
    try:
        with pytest.raises(BundleError, match=r"golden\.npz.*4x64x64; the model takes 3 bands"):
            acceptance_test(bad, adapter)
    finally:
        adapter.close()
    sockets = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))  # ipc paths are limited to ~100 characters
    endpoints = [a for n in ("tiles", "results", "control", "telemetry", "acks")
                 for a in (f"--{n}", f"ipc://{sockets}/{n}")]
    proc = subprocess.run([sys.executable, "-m", "runtime", "serve", "--model", str(tmp_path / "bad"),
                           "--device", "CPU", "--store", str(tmp_path / "store"), *endpoints],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "golden.npz" in proc.stderr


def test_an_uplink_whose_golden_tile_does_not_reproduce_is_refused(tmp_path: Path, runtime_proc: RuntimeProcess) -> None:
    good = tmp_path / "good"
    make_brightness_bundle(good, name="good")
    with_golden(good, _ship_tile())
    # The same golden tile claimed by a model that sees no ship in it (a different IR: bias -1000)
    broken = tmp_path / "broken"
    make_brightness_bundle(broken, name="broken")
    with_golden(broken, _ship_tile())
    golden = read_bundle(good).files[GOLDEN_FILE]
    data = dict(np.load(io.BytesIO(golden)))
    data["expected"] = np.ones_like(data["expected"])  # expects a ship everywhere: cannot reproduce
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **data)
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / GOLDEN_FILE).write_bytes(buffer.getvalue())
    manifest["files"][GOLDEN_FILE] = sha256(buffer.getvalue())
    (broken / "manifest.json").write_text(json.dumps(manifest))
    client = ControlClient(runtime_proc.endpoints["control"])
    try:
        with pytest.raises(ControlError, match="golden tile does not reproduce"):
            client.load_model(broken)
        assert client.status()["model"]["name"] == "brightness"
        still_serves(runtime_proc.endpoints)
        assert client.load_model(good)["model"]["name"] == "good"
        # The installed bundle is the uplinked one, golden tile included: its manifest (which
        # holds the golden file's sha256) has the same id.
        assert client.status()["model"]["sha256"] == read_bundle(good).id
        assert sha256(golden) in read_bundle(good).manifest["files"].values()
    finally:
        client.close()
