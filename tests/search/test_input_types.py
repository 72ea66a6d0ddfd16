"""Flight models that take u8/u16 counts and normalise them inside the IR (search.input_types)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hil
from flightsim.synthetic import generate_scene, write_scene
from runtime import ov_api
from runtime.bundle import BundleError, read_bundle
from runtime.device import open_device
from runtime.emulate import apply_profile
from runtime.preprocess import Preprocessor
from runtime.profiles import convert, get_profile
from runtime.protocol import Reason, TileRejected
from search.input_types import normalise_in_ir, retype_bundle

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "models" / "default"


@pytest.fixture(scope="module")
def retyped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("retyped")
    out = {"float32": DEFAULT}
    for dtype in ("uint8", "uint16"):
        out[dtype] = root / dtype
        retype_bundle(DEFAULT, out[dtype], dtype)
    return out


def test_retyped_manifest_and_ir_say_the_same_input(retyped: dict[str, Path]) -> None:
    for dtype in ("uint8", "uint16"):
        bundle = read_bundle(retyped[dtype])
        inp = bundle.manifest["input"]
        assert inp["dtype"] == dtype and inp["normalization"]["where"] == "ir"
        assert bundle.manifest["derived_from"]["sha256"] == read_bundle(DEFAULT).id
        adapter = open_device(bundle, "CPU", lambda *_: None, infer_requests=1)
        assert adapter.input_dtype == dtype
        adapter.close()


def test_only_float32_host_normalised_models_can_be_retyped(retyped: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"valid: \['float32', 'uint8', 'uint16'\]"):
        retype_bundle(DEFAULT, tmp_path / "x", "int8")
    with pytest.raises(BundleError, match="only a float32-input model"):
        retype_bundle(retyped["uint8"], tmp_path / "y", "uint16")
    with pytest.raises(ValueError, match="changes nothing"):
        retype_bundle(DEFAULT, tmp_path / "z", "float32")


def test_preprocessor_passes_counts_in_the_model_type_and_pads_with_the_mean(retyped: dict[str, Path]) -> None:
    manifest = read_bundle(retyped["uint8"]).manifest["input"]
    prep = Preprocessor(manifest, (1, 3, 256, 256))
    tile = np.arange(3 * 100 * 120, dtype=np.uint32).reshape(3, 100, 120).astype(np.uint8)
    batch, valid = prep(tile, {})
    assert batch.dtype == np.uint8 and valid == (100, 120)
    assert np.array_equal(batch[0, :, :100, :120], tile)
    assert [int(batch[0, b, 255, 255]) for b in range(3)] == manifest["normalization"]["pad"]
    with pytest.raises(TileRejected) as err:
        prep(tile.astype(np.uint16), {})
    assert err.value.reason is Reason.UNSUPPORTED_DTYPE and "uint8" in err.value.detail
    wide = Preprocessor(read_bundle(retyped["uint16"]).manifest["input"], (1, 3, 256, 256))
    assert wide(tile, {})[0].dtype == np.uint16  # u8 counts fit u16 without loss


@pytest.mark.slow
@pytest.mark.parametrize("device", ["CPU", "myriadx-emu"])
def test_retyped_models_score_as_the_float32_model_on_8_bit_data(
        retyped: dict[str, Path], device: str, tmp_path: Path) -> None:
    """Same weights, counts normalised in the IR instead of on the host: mIoU within 0.005."""
    scene = write_scene(generate_scene(7, size=512), tmp_path / "scene")
    miou = {}
    for dtype, model in retyped.items():
        report = hil.run(scene["scene"], model, tmp_path / f"{dtype}-{device}", device=device,
                         truth=scene["mask"]).report
        assert report["tiles_processed"] == report["tiles_sent"] > 0, report
        miou[dtype] = report["miou"]
    assert miou["float32"] > 0.5, miou  # a model that finds vessels, so that agreement means something
    for dtype in ("uint8", "uint16"):
        assert abs(miou[dtype] - miou["float32"]) <= 0.005, miou


def test_twin_converts_integer_counts_as_the_profile_converts_the_input() -> None:
    """u16 counts above 2048 are not all FP16 values: the twin rounds them at the Convert, with
    the profile's conversion rounding, and saturates above 65504 as the profile says."""
    ops = ov_api.opset1
    param = ops.parameter([1, 1, 1, 8], ov_api.Type.f32, name="image")
    model = ov_api.Model([ops.result(param)], [param], "identity")
    counted = normalise_in_ir(model, "uint16", [0.0], [1.0])
    profile = get_profile("fp16-myriadx")
    twin, report = apply_profile(counted, profile)
    compiled = ov_api.Core().compile_model(twin, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    counts = np.array([[[[0, 255, 2047, 2049, 2051, 4097, 65504, 65535]]]], dtype=np.uint16)
    got = compiled.create_infer_request().infer({0: counts})[compiled.output(0)]
    expected = convert(counts.astype(np.float32), profile.numerics)
    assert np.array_equal(got, expected), (got, expected)
    assert got[0, 0, 0, 3] != 2049  # rounded, not passed through
    assert report.inputs_converted, report


@pytest.mark.slow
def test_baseline_and_search_write_counts_input_models(tmp_path: Path, tiny_cfg: dict, tiny_config_path: Path) -> None:
    """``[export] input_dtype``: train-baseline and a search candidate both write a u8-input bundle
    that the rig runs (the candidate's hil scores come from it, on the twin)."""
    from search.baseline import train_baseline
    from search.candidate import evaluate_candidate
    from search.dataset import prepare_data
    from search.space import Genome

    base = train_baseline(tmp_path / "base", config_path=tiny_config_path, progress=False, input_dtype="uint8").bundle
    assert base.manifest["input"]["dtype"] == "uint8" and "float32-input IR" in base.manifest["metrics"]["input"]
    tiny_cfg["export"]["input_dtype"] = "uint8"
    data = prepare_data(tiny_cfg, tmp_path / "data")
    record = evaluate_candidate(Genome.from_dict(tiny_cfg["ablate"]), tiny_cfg, data, tmp_path / "search")
    assert record["status"] == "ok", record.get("reason")
    bundle = read_bundle(record["bundle"])
    assert bundle.manifest["input"]["dtype"] == "uint8"
    # both carry a golden tile from their validation data, which the rig's runtime reproduced
    assert "golden.npz" in bundle.files and "golden.npz" in base.files
    assert bundle.manifest["golden"]["shape"] == [3, 128, 128] and bundle.manifest["golden"]["dtype"] == "uint8"
    # what the rig and the runtime compare a scene's counts with (runtime.fit)
    assert bundle.manifest["trained_for"]["counts"] == base.manifest["trained_for"]["counts"] == ["uint8"]
    assert base.manifest["golden"]["shape"] == [3, 128, 128]  # [export] tile of the tiny configuration
    assert record["device_metrics"]["device"] == "myriadx-emu" and record["device_metrics"]["miou"] is not None


def test_a_u8_tile_read_by_two_ops_is_normalised_once() -> None:
    """The same export retyped to uint8: one normalisation head, read by both ops (each extra head is
    work on the device; the 2022.3 CPU plugin computes a shared u8 head right, tests/ov2022), and
    the retyped IR computes what the float IR computes on the host-normalised counts."""
    from search.export import compile_ir
    from search.export_ir import export_ir
    from search.input_types import retype_ir
    from search.network import GenomeNet
    from search.space import BlockGene, Genome

    net = GenomeNet(Genome((BlockGene("residual", 8),), "nearest", 1))
    xml, bin_, _ = export_ir(net, (1, 1, 16, 16))
    rxml, rbin = retype_ir(xml, bin_, "uint8", {"where": "host", "mean": [100.0], "std": [40.0]})
    model = ov_api.read_ir(rxml, rbin)
    (param,) = model.get_parameters()
    (to_f32,) = [t.get_node() for t in param.output(0).get_target_inputs()]
    (subtract,) = [t.get_node() for t in to_f32.output(0).get_target_inputs()]
    (multiply,) = [t.get_node() for t in subtract.output(0).get_target_inputs()]
    assert [n.get_type_name() for n in (to_f32, subtract, multiply)] == ["Convert", "Subtract", "Multiply"]
    assert len(multiply.output(0).get_target_inputs()) == 2  # the residual's body and its skip
    counts = np.random.default_rng(0).integers(0, 256, (1, 1, 16, 16)).astype(np.uint8)
    normalised = (counts.astype(np.float32) - np.float32(100.0)) * (np.float32(1) / np.float32(40.0))
    f, r = compile_ir(xml, bin_), compile_ir(rxml, rbin)
    np.testing.assert_allclose(r({"image": counts})[r.output(0)], f({"image": normalised})[f.output(0)], atol=1e-6)


def test_each_op_reading_the_tile_gets_its_own_normalisation() -> None:
    """A real export of a one-band genome whose block 0 is residual (the tile feeds its 3x3 body and
    its 1x1 skip), retyped to uint16: every op that read the float tile reads a normalisation head
    of its own (a shared one is miscomputed by the OpenVINO 2022.3 CPU plugin for u16, tests/ov2022), and
    the retyped IR computes what the float IR computes on the host-normalised counts."""
    from search.export import compile_ir
    from search.export_ir import export_ir
    from search.input_types import retype_ir
    from search.network import GenomeNet
    from search.space import BlockGene, Genome

    net = GenomeNet(Genome((BlockGene("residual", 8),), "nearest", 1))
    xml, bin_, _ = export_ir(net, (1, 1, 16, 16))
    norm = {"where": "host", "mean": [1000.0], "std": [500.0]}
    rxml, rbin = retype_ir(xml, bin_, "uint16", norm)
    model = ov_api.read_ir(rxml, rbin)
    (param,) = model.get_parameters()
    heads = [t.get_node() for t in param.output(0).get_target_inputs()]
    assert len(heads) == 2 and all(h.get_type_name() == "Convert" for h in heads)
    for node in heads:
        for _ in range(2):  # Convert -> Subtract -> Multiply, each read by one op only
            (target,) = node.output(0).get_target_inputs()
            node = target.get_node()
        assert node.get_type_name() == "Multiply" and len(node.output(0).get_target_inputs()) == 1
    counts = np.random.default_rng(0).integers(0, 65536, (1, 1, 16, 16)).astype(np.uint16)
    normalised = (counts.astype(np.float32) - np.float32(1000.0)) * (np.float32(1) / np.float32(500.0))
    f, r = compile_ir(xml, bin_), compile_ir(rxml, rbin)
    np.testing.assert_allclose(r({"image": counts})[r.output(0)], f({"image": normalised})[f.output(0)], atol=1e-6)
