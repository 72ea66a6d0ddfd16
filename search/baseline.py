"""The fixed baseline flight model: train, export to FP16 IR, score the IR, write the bundle.

The manifest's metrics are the exported IR's, run by OpenVINO on the CPU in f32 over whole
validation scenes tiled as the payload tiles them, so the number a bundle advertises is the number
the payload's model produces, not the torch model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import Bundle, write_bundle
from runtime.config import load_defaults
from search.data import estimate_normalization, load_scenes, synthetic_kwargs
from runtime.golden import with_golden
from search.input_types import with_input_dtype
from search.evaluate import golden_tile, ir_predictor, score_scenes, torch_predictor
from search.export import INPUT_NAME, OUTPUT_NAME, compile_ir, ir_opsets
from search.export_ir import to_ir
from search.model import NetConfig, UNet, count_parameters
from search.train import TrainResult, TrainSettings, train_model

MEASURED_ON = (
    "OpenVINO CPU, INFERENCE_PRECISION_HINT=f32, exported FP16 IR, "
    "{tile}x{tile} tiles (edge tiles zero-padded after normalisation)"
)


@dataclass(frozen=True)
class BaselineRun:
    """What a baseline run produced: the bundle written and the torch network it was exported from."""

    bundle: Bundle
    model: UNet
    training: TrainResult


def load_config(path: Path | None = None) -> dict[str, Any]:
    """search's defaults (``search/defaults.toml``), with an optional user TOML merged over them."""
    return load_defaults(Path(__file__).with_name("defaults.toml"), path)


def seed_ranges(data: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Training and validation seeds; refuses overlap or seeds reserved for held-out evaluation."""
    train = list(range(data["train_seed_start"], data["train_seed_start"] + data["train_scenes"]))
    val = list(range(data["val_seed_start"], data["val_seed_start"] + data["val_scenes"]))
    reserved = [s for s in train + val if s < data["min_seed"]]
    if reserved:
        raise ValueError(f"seeds {reserved} are below min_seed={data['min_seed']} (held out for evaluation)")
    overlap = sorted(set(train) & set(val))
    if overlap:
        raise ValueError(f"training and validation seeds overlap: {overlap}")
    if not train or not val:
        raise ValueError("train_scenes and val_scenes must both be at least 1")
    return train, val


def train_baseline(
    out_dir: Path,
    epochs: int | None = None,
    seed: int | None = None,
    config_path: Path | None = None,
    progress: bool = True,
    command: str | None = None,
    input_dtype: str | None = None,
) -> BaselineRun:
    """Train the baseline network, export it and write the bundle to ``out_dir``.

    ``epochs``, ``seed`` and ``input_dtype`` override the config; ``command`` is recorded in the manifest so the
    bundle says how to reproduce it.
    """
    cfg = load_config(config_path)
    if epochs is not None:
        cfg["train"]["epochs"] = epochs
    if seed is not None:
        cfg["train"]["seed"] = seed
    if input_dtype is not None:
        cfg["export"]["input_dtype"] = input_dtype
    settings = TrainSettings.from_dict(cfg["train"])
    net = NetConfig.from_dict(cfg["model"])
    exp = cfg["export"]
    tile, threshold = int(exp["tile"]), float(exp["threshold"])
    if tile % net.stride:
        raise ValueError(f"export tile {tile} must be a multiple of {net.stride} for widths {list(net.widths)}")
    if cfg["data"]["source"] != "synthetic":
        raise ValueError(f"train-baseline trains on synthetic scenes only; [data] source = {cfg['data']['source']!r} "
                         "is read by 'search run' and 'search ablate' (valid here: ['synthetic'])")
    train_seeds, val_seeds = seed_ranges(cfg["data"])

    say = print if progress else (lambda *_: None)
    say(
        f"generating {len(train_seeds)} training scenes ({cfg['data']['train_scene_size']} px) "
        f"and {len(val_seeds)} validation scenes ({cfg['data']['val_scene_size']} px)"
    )
    train_scenes = load_scenes(train_seeds, synthetic_kwargs(cfg["data"], cfg["data"]["train_scene_size"]))
    val_scenes = load_scenes(val_seeds, synthetic_kwargs(cfg["data"], cfg["data"]["val_scene_size"]))
    norm = estimate_normalization(train_scenes)

    result = train_model(net, train_scenes, val_scenes, norm, settings, cfg["train"]["seed"], tile, threshold, progress)
    model = result.model
    say(f"trained in {result.seconds:.0f} s")

    shape = (1, net.in_channels, tile, tile)
    xml, bin_ = to_ir(model, shape)
    compiled = compile_ir(xml, bin_)
    # Sanity check of the export: one normalised validation tile through both.
    x = norm.apply(val_scenes[0].image[:, :tile, :tile])[None]
    diff = float(np.abs(torch_predictor(model)(x) - ir_predictor(compiled)(x)).max())
    say(f"torch vs IR max |diff| on one tile: {diff:.2e}")
    if diff > exp["check_tolerance"]:
        raise RuntimeError(f"IR disagrees with torch by {diff:.3g} > check_tolerance {exp['check_tolerance']}")
    conf = score_scenes(ir_predictor(compiled), val_scenes, norm, tile, threshold)
    say(f"IR on validation seeds {val_seeds}: vessel IoU {conf.vessel_iou:.4f}  mIoU {conf.miou:.4f}")

    manifest = {
        "name": cfg["model"]["name"],
        "input": {
            "shape": list(shape),
            "layout": "NCHW",
            "name": INPUT_NAME,
            "bands": list(exp["bands"]),
            "dtype": "float32",
            "normalization": norm.to_manifest(),
        },
        "output": {
            "name": OUTPUT_NAME,
            "meaning": "vessel probability per pixel",
            "shape": [1, 1, tile, tile],
            "threshold": threshold,
            "activation": "sigmoid",
        },
        "numerics": {"weights": "fp16", "trained_under": "fp32"},
        "genome": {"family": "unet", **net.to_dict()},
        "parameters": count_parameters(model),
        "opsets": ir_opsets(xml),
        "training": {
            "seeds": train_seeds,
            "validation_seeds": val_seeds,
            "scene_size": cfg["data"]["train_scene_size"],
            "epochs": settings.epochs,
            "patch": settings.patch,
            "seed": cfg["train"]["seed"],
            "seconds": round(result.seconds, 1),
            "history": result.history,
            "command": command or "search.baseline.train_baseline()",
        },
        "metrics": {
            "val_vessel_iou": round(conf.vessel_iou, 4),
            "val_miou": round(conf.miou, 4),
            "val_seeds": val_seeds,
            "val_scene_size": cfg["data"]["val_scene_size"],
            "torch_vs_ir_max_abs_diff": diff,
            "measured_on": MEASURED_ON.format(tile=tile),
        },
    }
    if exp["input_dtype"] != "float32":
        manifest["metrics"]["input"] = (f"measured with the float32-input IR of the same weights; the "
                                        f"bundle's IR takes {exp['input_dtype']} counts")
    xml, bin_, manifest = with_input_dtype(xml, bin_, manifest, exp["input_dtype"])
    write_bundle(out_dir, xml, bin_, manifest)
    return BaselineRun(with_golden(out_dir, golden_tile(val_scenes, tile)), model, result)
