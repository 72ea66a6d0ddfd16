"""Guards of the Myriad X cost model and its callers (runtime/latency.py, latency_calibration.py,
device.py, bench.py and ``runtime benchmark``): ops the cost table does not know are named wherever
the estimate goes, cost overrides out of range are refused, degenerate calibrations are refused,
and a benchmark always times at least one inference."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
import pytest
from openvino import opset8 as ops

from runtime import latency
from runtime.bundle import write_bundle
from runtime.latency import estimate_latency, load_costs
from runtime.latency_calibration import REFERENCES, calibrate, fit_costs, leave_one_out, summary


def _sin_model(size: int = 16) -> ov.Model:
    """A convolution followed by Sin: an op type the cost table does not list (priced by bytes)."""
    x = ops.parameter([1, 3, size, size], np.float32, name="input")
    conv = ops.convolution(x, ops.constant(np.full((1, 3, 1, 1), 0.1, np.float32)), [1, 1], [0, 0], [0, 0], [1, 1])
    return ov.Model([ops.sigmoid(ops.sin(conv))], [x], "sin")


def _sin_bundle(out: Path, size: int = 16) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        ov.save_model(_sin_model(size), Path(tmp) / "model.xml", compress_to_fp16=True)
        xml, bin_ = (Path(tmp) / "model.xml").read_bytes(), (Path(tmp) / "model.bin").read_bytes()
    manifest = {
        "name": "sin",
        "input": {"shape": [1, 3, size, size], "layout": "NCHW", "bands": ["b"] * 3, "dtype": "float32",
                  "normalization": {"where": "host", "mean": [0.0] * 3, "std": [255.0] * 3}},
        "output": {"name": "vessel_probability", "shape": [1, 1, size, size], "threshold": 0.5,
                   "activation": "sigmoid", "meaning": "probability that the pixel is a vessel"},
        "numerics": {"weights": "fp16"},
        "parameters": 4,
    }
    write_bundle(out, xml, bin_, manifest)
    return out


# -- defect 1: op types not in the cost table ---------------------------------------------------------


def test_estimate_names_op_types_priced_by_bytes_alone() -> None:
    est = estimate_latency(_sin_model())
    assert est.unpriced_ops == ["Sin"]
    report = est.to_json()
    assert report["unpriced_ops"] == ["Sin"]
    (sin,) = [la for la in report["layers"] if la["type"] == "Sin"]
    assert "not in the op table" in sin["note"]


def test_estimate_of_a_fully_priced_model_lists_no_unpriced_ops() -> None:
    assert estimate_latency(ov.Core().read_model("models/default/model.xml")).to_json()["unpriced_ops"] == []


def test_device_keeps_unpriced_ops_when_it_drops_the_layers(tmp_path: Path) -> None:
    from runtime.bundle import read_bundle
    from runtime.device import open_device

    adapter = open_device(read_bundle(_sin_bundle(tmp_path / "sin")), "myriadx-emu", lambda *_: None)
    assert "layers" not in adapter.latency_estimate
    assert adapter.latency_estimate["unpriced_ops"] == ["Sin"]


def test_benchmark_command_prints_unpriced_ops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.__main__ import main

    bundle = _sin_bundle(tmp_path / "sin")
    assert main(["benchmark", "--model", str(bundle), "--device", "myriadx-emu", "--seconds", "0.01"]) == 0
    err = capsys.readouterr().err
    assert "priced by their bytes alone" in err and "Sin" in err


# -- defect 4: cost overrides out of range ----------------------------------------------------------


@pytest.mark.parametrize("override, key", [
    ({"shave": {"bytes_per_s": -1.3e9}}, "[shave] bytes_per_s"),
    ({"nce": {"cycles_per_s": 0}}, "[nce] cycles_per_s"),
    ({"memory": {"ddr_bytes_per_s": float("inf")}}, "[memory] ddr_bytes_per_s"),
    ({"transfer": {"bytes_per_s": {"usb2": 0.0}}}, "[transfer.bytes_per_s] usb2"),
    ({"transfer": {"latency_s": -1.0}}, "[transfer] latency_s"),
    ({"overhead": {"layer_s": float("nan")}}, "[overhead] layer_s"),
    ({"nce": {"macs_per_cycle": 0}}, "[nce] macs_per_cycle"),
    ({"nce": {"output_channel_align": 8.5}}, "[nce] output_channel_align"),
    ({"nce": {"ram_blocks": [1, 2, 0, 8, 16]}}, "[nce] ram_blocks[2]"),
    ({"nce": {"mode_cost_cycles": [0, 5]}}, "mode_cost_cycles"),
    ({"memory": {"activation_cmx_budget_bytes": -1}}, "[memory] activation_cmx_budget_bytes"),
])
def test_load_costs_refuses_constants_out_of_range(override: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_costs(override)


def test_load_costs_accepts_the_toml_and_a_zero_fixed_time() -> None:
    assert load_costs({"transfer": {"latency_s": 0.0}})["transfer"]["latency_s"] == 0.0
    latency.check_costs(load_costs())


# -- defect 3: degenerate calibrations ----------------------------------------------------------------


def test_summary_and_calibrate_refuse_no_references() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        summary([])
    with pytest.raises(ValueError, match="at least 2"):
        calibrate([])


def test_leave_one_out_refuses_a_single_reference() -> None:
    with pytest.raises(ValueError, match="at least 2 reference"):
        leave_one_out([REFERENCES[-3]])


def test_fit_refuses_fewer_references_than_fitted_constants() -> None:
    with pytest.raises(ValueError, match="at least 9 reference"):
        fit_costs(REFERENCES[:3])


def test_leave_one_out_warns_when_each_refit_is_underdetermined(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime import latency_calibration

    monkeypatch.setattr(latency_calibration, "ITERATIONS_PER_RESTART", 5)  # the warning, not the fit
    monkeypatch.setattr(latency_calibration, "RESTARTS", 1)
    small = [r for r in REFERENCES if r.name.startswith("Sanket 256x128")][:2]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = leave_one_out(small)
    assert len(rows) == 2
    assert any("underdetermined" in str(w.message) for w in caught)


# -- defect 5: benchmark length ----------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, -1, float("nan")])
def test_benchmark_refuses_a_length_not_above_zero(seconds: float, brightness_bundle: Path) -> None:
    from runtime.bench import benchmark

    with pytest.raises(ValueError, match="seconds.*> 0"):
        benchmark(brightness_bundle, "CPU", seconds, "f32")


@pytest.mark.parametrize("seconds", ["0", "-1"])
def test_benchmark_command_refuses_a_length_not_above_zero(seconds: str, brightness_bundle: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--model", str(brightness_bundle), "--device", "CPU", "--seconds", seconds])
    assert exc.value.code == 2
    assert "must be a finite number > 0" in capsys.readouterr().err


def test_benchmark_times_at_least_one_inference(brightness_bundle: Path) -> None:
    from runtime.bench import benchmark

    result = benchmark(brightness_bundle, "CPU", 1e-9, "f32")
    host = result["host_measured"]
    assert host["inferences"] >= 1
    assert all(np.isfinite(v) for v in host["latency_ms"].values())
    json.dumps(result)
