"""The hand-designed baseline flight model, made on the search's road.

The baseline is one fixed genome of the search's network family (:func:`search.space.unet_genome`
of ``[model] widths``), trained by the candidates' training loop (:func:`search.train.fit`,
FP32 only: no aligned epochs), exported by the candidates' exporter (:func:`search.export_ir.export_ir`,
checked against the Myriad X rules) and described by the candidates' manifest
(:func:`search.candidate.manifest_for`). So "the search beats the baseline" compares networks, not
two pieces of code.

Its data is the search's (:func:`search.dataset.prepare_data`: synthetic seed ranges or a real set
with its split). The manifest's metrics are the exported IR's, run by OpenVINO on the CPU in f32
over the validation samples tiled and normalised as the payload does it (``measured_on`` says so);
the search's candidates are scored through hil on the flight device instead, and say that.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import Bundle, check_input_holds, write_bundle
from runtime.golden import with_golden
from search.candidate import manifest_for, shift_sea_for_export
from search.train import fit, torch_device
from search.recipe import check_patch, check_recipe
from search.config import check_values, load_config
from search.dataset import make_sampler, prepare_data, split_arrays, training_counts
from search.evaluate import golden_tile, ir_predictor, score_scenes, torch_predictor
from search.export import compile_ir
from search.export_ir import export_ir
from search.input_types import with_input_dtype
from search.network import GenomeNet
from search.space import count_parameters, unet_genome
from search.train import seed_everything

MEASURED_ON = ("IR on the host CPU in process (OpenVINO, INFERENCE_PRECISION_HINT=f32, the exported FP16 "
               "weights), validation samples {val} tiled {tile}x{tile} and normalised as the payload does: "
               "mean over samples of each one's pixel scores")


@dataclass(frozen=True)
class BaselineRun:
    """What a baseline run produced: the bundle written, the trained network and its training log."""

    bundle: Bundle
    model: GenomeNet
    training: dict[str, Any]


def train_baseline(
    out_dir: Path,
    epochs: int | None = None,
    seed: int | None = None,
    config_path: Path | None = None,
    progress: bool = True,
    command: str | None = None,
    input_dtype: str | None = None,
    data_dir: Path | None = None,
) -> BaselineRun:
    """Train the baseline network, export it and write the bundle to ``out_dir``.

    ``epochs``, ``seed`` and ``input_dtype`` override ``[train] epochs``, ``[train] seed`` and
    ``[export] input_dtype``; ``command`` is recorded in the manifest so the bundle says how to
    reproduce it; ``data_dir`` keeps the prepared data (default: a temporary folder).
    """
    if Path(out_dir).exists() and not Path(out_dir).is_dir():  # before training, not after it
        raise ValueError(f"{out_dir} is an existing file, not a bundle directory")
    cfg = load_config(config_path)
    if epochs is not None:
        cfg["train"]["epochs"] = epochs
    if seed is not None:
        cfg["train"]["seed"] = seed
    if input_dtype is not None:
        cfg["export"]["input_dtype"] = input_dtype
    check_values(cfg)  # --epochs / --seed too
    check_recipe(cfg)  # threshold, sea_shift: refused before training, not after it
    genome = unet_genome(cfg["model"]["widths"], int(cfg["model"]["in_channels"]))
    exp, tr = cfg["export"], cfg["train"]
    tile, threshold = int(exp["tile"]), float(exp["threshold"])
    if tile % genome.stride:
        raise ValueError(f"export tile {tile} must be a multiple of {genome.stride} for widths {cfg['model']['widths']}")
    check_patch(genome.stride, cfg)  # before the data is prepared, not in the first batch
    budget = int(cfg["space"]["max_parameters"])
    # counted with the land gate it is trained and flown with, as the search counts its genomes
    n_params = count_parameters(genome, tr["land_gate"])
    if n_params > budget:
        raise ValueError(f"widths {cfg['model']['widths']} make {n_params} parameters"
                         + (f" with land gate {tr['land_gate']!r}" if tr["land_gate"] != "none" else "")
                         + f"; the budget ([space] max_parameters) is {budget}")
    say = print if progress else (lambda *_: None)
    tmp = None if data_dir is not None else tempfile.mkdtemp(prefix="baseline-data-")
    try:
        data = prepare_data(cfg, Path(data_dir or tmp))
        check_input_holds(exp["input_dtype"], training_counts(data), "[export] input_dtype", "the training data")
        val = split_arrays(data, "val")
        say(f"training {genome} ({n_params} parameters) for {tr['epochs']} FP32 epochs")
        rng = seed_everything(int(tr["seed"]), int(tr["threads"]))
        net = GenomeNet(genome, land_gate=tr["land_gate"])
        log = {"fp32": fit(net, make_sampler(cfg, data, rng), cfg, int(tr["epochs"]), float(tr["lr"]),
                           torch_device(cfg["candidate"]["torch_device"])),
               "aligned": None, "trained_under": "fp32", "seed": int(tr["seed"]), "epochs": int(tr["epochs"]),
               "command": command or "search.baseline.train_baseline()"}
        net = net.cpu().eval()
        shift_sea_for_export(net, cfg, log)
        say(f"trained in {log['fp32']['seconds']:.0f} s")

        shape = (1, genome.in_channels, tile, tile)
        xml, bin_, _ = export_ir(net, shape)
        compiled = compile_ir(xml, bin_)
        # Sanity check of the export: one normalised validation tile through both.
        x = data.norm.apply(val[0].image[:, :tile, :tile])[None]
        if x.shape != shape:
            x = np.zeros(shape, np.float32)
        diff = float(np.abs(torch_predictor(net)(x) - ir_predictor(compiled)(x)).max())
        if diff > exp["check_tolerance"]:
            raise RuntimeError(f"IR disagrees with torch by {diff:.3g} > check_tolerance {exp['check_tolerance']}")
        confs = [score_scenes(ir_predictor(compiled), [s], data.norm, tile, threshold) for s in val]
        metrics = {
            "val_vessel_iou": round(float(np.mean([c.vessel_iou for c in confs])), 4),
            "val_miou": round(float(np.mean([c.miou for c in confs])), 4),
            "val_seeds": list(data.val_seeds), "torch_vs_ir_max_abs_diff": diff,
            "measured_on": MEASURED_ON.format(val=list(data.val_seeds), tile=tile),
        }
        say(f"IR on validation samples: vessel IoU {metrics['val_vessel_iou']:.4f}  mIoU {metrics['val_miou']:.4f}")
        manifest = manifest_for(genome, data, cfg, metrics, xml, log, str(cfg["model"]["name"]))
        manifest["numerics"] = {"weights": "fp16", "trained_under": "fp32"}  # aligned to no profile
        if exp["input_dtype"] != "float32":
            manifest["metrics"]["input"] = (f"measured with the float32-input IR of the same weights; the "
                                            f"bundle's IR takes {exp['input_dtype']} counts")
        write_bundle(out_dir, *with_input_dtype(xml, bin_, manifest, exp["input_dtype"]))
        bundle = with_golden(out_dir, golden_tile(val, tile), require_vessels=False)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return BaselineRun(bundle, net, log)
