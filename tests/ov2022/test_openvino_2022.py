"""The OpenVINO 2022.3 LTS path: the only toolkit with the MYRIAD plugin (Python 3.10 at most).

Run in the environment `make test` builds for it (.venv-ov2022: Python 3.10, openvino==2022.3.2,
numpy<1.25). Skipped under the modern API, where the rest of the suite covers the same code.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from runtime import ov_api

pytestmark = pytest.mark.skipif(ov_api.API != "openvino.runtime", reason="needs the OpenVINO 2022.3 API")

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "default"


def _scene_iou(device: str, model: Path = MODEL) -> tuple[float, dict]:
    from flightsim.synthetic import generate_scene
    from runtime.bundle import read_bundle
    from runtime.device import open_device
    from runtime.preprocess import Preprocessor

    bundle = read_bundle(model)
    adapter = open_device(bundle, device, lambda out, data: None, infer_requests=1)
    prep = Preprocessor(bundle.manifest["input"], adapter.input_shape)
    scene = generate_scene(7)
    _, _, th, tw = adapter.input_shape
    pred = np.zeros_like(scene.mask)
    for row in range(0, scene.mask.shape[0], th):
        for col in range(0, scene.mask.shape[1], tw):
            batch, (h, w) = prep(scene.image[:, row:row + th, col:col + tw], {})
            pred[row:row + h, col:col + w] = adapter.infer(batch)[0, 0, :h, :w] >= bundle.threshold
    inter = np.count_nonzero(pred & scene.mask)
    union = np.count_nonzero(pred | scene.mask)
    return inter / union, adapter.numerics


def test_this_is_the_2022_toolkit() -> None:
    assert ov_api.version().startswith("2022.3"), ov_api.version()


def test_default_model_runs_on_the_2022_cpu_plugin() -> None:
    iou, numerics = _scene_iou("CPU")
    assert numerics["openvino"].startswith("2022.3") and numerics["inference_precision"] == "f32"
    assert iou >= 0.5, iou


def test_default_model_runs_under_the_twin_on_2022() -> None:
    iou, numerics = _scene_iou("myriadx-emu")
    assert numerics["profile"] == "fp16-myriadx"
    assert iou >= 0.5, iou


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("device", ["CPU", "myriadx-emu"])
def test_counts_input_models_run_on_2022(tmp_path: Path, device: str, dtype: str) -> None:
    """The default model retyped (here, on the 2022.3 API) to take counts and normalise them in its
    IR: the same vessel IoU as its float32-input original, within 0.005."""
    from search.input_types import retype_bundle

    retype_bundle(MODEL, tmp_path / dtype, dtype)
    iou, numerics = _scene_iou(device, tmp_path / dtype)
    reference, _ = _scene_iou(device)
    assert abs(iou - reference) <= 0.005 and iou >= 0.5, (iou, reference)


def test_a_blob_compiled_on_2022_is_imported_and_a_modern_one_refused(tmp_path: Path) -> None:
    """runtime compile on the 2022.3 API: the runtime imports its blob; a blob made by a newer
    toolkit is refused with the reason (and the IR compiled), never fed to this plugin."""
    import json

    from runtime.bundle import Bundle, read_bundle
    from runtime.compiled import compile_bundle
    from runtime.device import open_device

    bundle = compile_bundle(read_bundle(MODEL), "CPU")
    batch = np.random.default_rng(1).standard_normal((1, 3, 256, 256)).astype(np.float32)
    outputs, loads = [], []
    for candidate in (read_bundle(MODEL), bundle):
        adapter = open_device(candidate, "CPU", lambda *_: None, infer_requests=1)
        outputs.append(adapter.infer(batch))
        loads.append(adapter.load["how"])
        adapter.close()
    assert loads == ["compiled", "imported"] and np.array_equal(*outputs)
    record, blob = bundle.compiled["CPU"]
    newer = json.dumps({**json.loads(record), "openvino": "2026.4.1"}).encode()
    adapter = open_device(Bundle(bundle.manifest, bundle.files, bundle.manifest_bytes, {"CPU": (newer, blob)}),
                          "CPU", lambda *_: None, infer_requests=1)
    assert adapter.load["how"] == "compiled" and "OpenVINO 2026.4.1" in adapter.load["detail"]
    adapter.close()


@pytest.mark.parametrize("device, profile, expected", [("CPU", None, "fp32"),
                                                       ("myriadx-emu", "fp16-myriadx", "fp16-myriadx")])
def test_the_probe_runs_on_2022(device: str, profile: str, expected: str) -> None:
    from runtime.probe import probe

    assert expected in probe(device, profile)["matches"]


def test_the_check_passes_the_default_model() -> None:
    from runtime.check import check_bundle_dir

    assert not [f for f in check_bundle_dir(MODEL) if f.severity == "error"]


def test_a_runtime_serves_on_2022(tmp_path: Path) -> None:
    """The whole payload (sockets, async requests, vectorisation) on the 2022.3 API."""
    from flightsim.streamer import Streamer
    from flightsim.synthetic import generate_scene, write_scene
    from flightsim.tiles import tile_scene
    from hil.collector import ResultCollector
    from runtime import config
    from runtime.server import Runtime, Settings

    short = tempfile.mkdtemp(prefix="ov2022-", dir="/tmp")  # ipc paths are limited to ~100 bytes
    endpoints = {n: f"ipc://{short}/{n}" for n in ("tiles", "results", "control", "telemetry", "acks")}
    runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", **endpoints), model=MODEL)
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    try:
        paths = write_scene(generate_scene(7, size=512), tmp_path / "scene")
        collector = ResultCollector(endpoints["results"], acks=endpoints.get("acks"))
        log = Streamer(endpoints["tiles"]).stream(tile_scene(paths["scene"], 256))
        assert collector.wait_for(len(log.sent_at), 60)
        assert all(r["status"] == "ok" for _, r, _ in collector.results)
        collector.close()
    finally:
        runtime.stop()
        thread.join(30)


@pytest.mark.parametrize(("dtype", "bands"), [("uint16", 1), ("uint8", 1), ("uint8", 3)])
def test_an_integer_input_read_by_two_convolutions_is_normalised_for_both(dtype: str, bands: int) -> None:
    """A model whose tile feeds two convolutions (a residual block 0: its 3x3 body and its 1x1
    skip), retyped to integer counts: on the 2022.3 CPU plugin it computes what the float32 model
    computes on the host-normalised counts. For a one-band uint16 tile, with one normalisation head
    shared by both, the plugin ran the 1x1 convolution on the raw counts (outputs ~1e2 times too
    large), so each reads its own; uint8 shares one head, which this plugin computes right."""
    from search.input_types import normalise_in_ir

    ops = ov_api.opset1
    rng = np.random.default_rng(0)
    image = ops.parameter([1, bands, 16, 16], np.float32, name="x")
    image.output(0).get_tensor().set_names({"image"})
    body = ops.convolution(image, ops.constant(rng.standard_normal((4, bands, 3, 3)).astype(np.float32)),
                           [1, 1], [1, 1], [1, 1], [1, 1])
    skip = ops.convolution(image, ops.constant(rng.standard_normal((4, bands, 1, 1)).astype(np.float32)),
                           [1, 1], [0, 0], [0, 0], [1, 1])
    model = ov_api.Model([ops.result(ops.add(body, skip))], [image])
    mean, std = ([1000.0] * bands, [500.0] * bands) if dtype == "uint16" else ([100.0] * bands, [40.0] * bands)
    counts = rng.integers(0, 65536 if dtype == "uint16" else 256, (1, bands, 16, 16)).astype(dtype)
    normalised = (counts.astype(np.float32) - np.float32(mean[0])) * (np.float32(1) / np.float32(std[0]))
    core = ov_api.Core()

    def run(m, x):
        compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return compiled({"image": x})[compiled.output(0)]

    expected = run(model, normalised)
    got = run(normalise_in_ir(model, dtype, mean, std), counts)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4 * np.abs(expected).max())
