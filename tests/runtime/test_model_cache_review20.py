"""Review 20: a compile through the model cache says where it came from in the value it returns
(:class:`runtime.model_cache.CacheCompile`), and a twin's compile hands that value back as it is; the
device adapter no longer fished the outcome out of a dict its compile callback filled in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runtime import ov_api
from runtime.bundle import read_bundle
from runtime.emulate import compile_twin
from runtime.model_cache import CacheCompile, compile_with_cache


def test_a_compile_through_the_cache_returns_its_outcome_with_the_compiled_model(
        tmp_path: Path, brightness_bundle: Path) -> None:
    bundle = read_bundle(brightness_bundle)
    core = ov_api.shared_core()
    model = ov_api.read_ir(bundle.files["model.xml"], bundle.files["model.bin"], core)
    cache = str(tmp_path / "cache")
    first = compile_with_cache(core, model, "CPU", {}, cache)
    second = compile_with_cache(core, model, "CPU", {}, cache)
    off = compile_with_cache(core, model, "CPU", {}, "")
    assert isinstance(first, CacheCompile)
    assert (first.source, second.source, off.source) == ("compile", "cache", "compile")
    assert second.said == f"from the model cache {cache}" and off.said == ""
    assert second.compiled.input(0).shape == first.compiled.input(0).shape
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.source = "cache"  # type: ignore[misc]


def test_a_twin_s_compile_hands_back_what_its_compile_cpu_made(tmp_path: Path, brightness_bundle: Path) -> None:
    bundle = read_bundle(brightness_bundle)
    core = ov_api.shared_core()
    model = ov_api.read_ir(bundle.files["model.xml"], bundle.files["model.bin"], core)
    twin, report = compile_twin(model, "fp16-myriadx", core, {},
                                lambda rewritten, full: compile_with_cache(core, rewritten, "CPU", full, ""))
    assert isinstance(twin, CacheCompile) and twin.source == "compile"
    assert twin.compiled.get_property("INFERENCE_PRECISION_HINT") is not None
    assert report.as_dict()
