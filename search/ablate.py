"""The paper's comparison as a command: FP32 on host, post-training FP16 on device, aligned on device.

For one genome and one data set (``python -m search ablate``):

1. train ``candidate.fp32_epochs`` in FP32 (a shared checkpoint), then two branches of
   ``candidate.aligned_epochs`` each from it, on the same patch stream: **post-training** (the same
   budget, still FP32; exported as is) and **aligned** (the target's forward pass, :mod:`search.align`).
   Both branches get the same number of steps and both fine-tune with BatchNorm frozen and folded
   (the post-training one through the identity profile ``fp32``), so the comparison is alignment,
   not more training nor a different BatchNorm regime;
2. the three numbers: the post-training network's FP32 forward on the host (torch), and each
   branch's FP16 IR through ``hil.run`` on the flight device (MYRIAD where attached, else the twin),
   on the validation scenes; the fraction of the gap recovered is
   ``(aligned - post) / (fp32 - post)`` (undefined when the gap is zero);
3. the gap broken down by cause on the twin, in process, with profiles that isolate each cause
   (built from the target profile's own data with ``dataclasses.replace``):

   ==================  =======================================================================
   ``ir-f32``          FP16 weights, f32 arithmetic (CPU plugin): what weight storage alone does
   ``rounding``        profile ``fp16-ieee``: every tensor rounded to fp16, no saturation or flush
   ``rounding+range``  the target's numerics (saturation at 65504, Myriad flush), ops as written
   ``target``          the target profile: numerics and op semantics (Interpolate remapping)
   ``ops-only``        f32 numerics with the target's op semantics (a cross-check)
   ==================  =======================================================================

   rounding = ir-f32 - rounding; range = rounding - (rounding+range); op semantics =
   (rounding+range) - target. The in-process scorer tiles and thresholds as the payload does
   (:mod:`search.evaluate`, per-scene scores averaged as :func:`search.candidate.hil_scores` does);
   its ``target`` row and hil's twin figure are the same computation by two paths.

The network is built with ``[train] land_gate`` (none by default), as a candidate of the same
config is: its bundles' manifests, output meaning and parameter count describe that network.

"FP32 on host" runs through hil as well (an f32-weight IR on the CPU plugin in f32), so the three
headline numbers share one scorer; the torch forward pass scored in process is printed beside it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import write_bundle
from runtime.emulate import compile_twin, emulation_cpu_config
from runtime.ov_api import Core, read_ir
from runtime.profiles import OpSemantics, get_profile
from search.align import Aligner
from search.candidate import hil_scores, manifest_for
from search.train import fit, torch_device
from search.recipe import check_patch, check_recipe, check_scoring
from search.dataset import make_sampler, prepare_data, split_arrays
from search.evaluate import ir_predictor, score_scenes, torch_predictor
from search.export_ir import export_ir
from search.input_types import with_input_dtype
from search.network import GenomeNet
from search.space import UPSAMPLINGS, Genome, SpaceConfig, check_genome, count_parameters
from search.state import write_json_atomic
from search.train import seed_everything

CAUSES = ("rounding", "range", "op_semantics")
#: A gap smaller than this (in IoU) has no meaningful fraction recovered.
NOISE_GAP = 2e-3


def parse_genome(arg: str | None, cfg: dict[str, Any]) -> Genome:
    """``--genome``: JSON text, a JSON file, a bundle manifest with a ``genome`` or its folder;
    default ``[ablate]``, refused the same way (a ValueError, not a traceback) when it is no genome."""
    if arg is None:
        return _genome(cfg["ablate"], "[ablate]")
    text = arg.strip()
    inline = text.startswith(("{", "["))  # JSON text, not a path
    path = Path(arg) / "manifest.json" if not inline and Path(arg).is_dir() else Path(arg)  # a bundle folder
    source = "--genome" if inline else f"--genome {path}"
    if not inline and not path.is_file():
        raise ValueError(f"{source}: no such file (give a genome as JSON, a JSON file, or a bundle)")
    try:
        data = json.loads(text if inline else path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object (a genome or a manifest holding one); got {type(data).__name__}")
    return _genome(data.get("genome", data), source)


#: The keys of a block of a genome (:meth:`search.space.BlockGene.to_dict`).
BLOCK_KEYS = ("kind", "width", "stride", "expansion")


def _genome(data: Any, source: str) -> Genome:
    """``data`` read as a genome, else a ValueError naming ``source``: a block's misspelt key (``strid``)
    was ignored, and the ablation trained a network other than the one written, at its default."""
    try:
        for k, block in enumerate(data.get("blocks", [])):  # a U-Net genome has none
            if not isinstance(block, dict):
                raise ValueError(f"block {k}: {block!r} is not a table of {list(BLOCK_KEYS)}")
            unknown = sorted(set(block) - set(BLOCK_KEYS))
            if unknown:
                raise ValueError(f"block {k}: unknown key(s) {unknown}; valid: {list(BLOCK_KEYS)}")
        return Genome.from_dict(data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{source}: not a genome ({type(exc).__name__}: {exc})") from None


def isolating_profiles(name: str) -> dict[str, Any]:
    """Twin profiles that add one cause at a time to f32, from profile ``name``'s own data."""
    target = get_profile(name)
    fp32, ieee = get_profile("fp32"), get_profile("fp16-ieee")
    return {
        "rounding": replace(ieee, ops=OpSemantics()),
        "rounding+range": replace(target, name=f"{name}/numerics-only", ops=OpSemantics()),
        "target": target,
        "ops-only": replace(fp32, name=f"{name}/ops-only", ops=target.ops),
    }


def _scores(predict: Any, scenes: list[Any], norm: Any, tile: int, threshold: float,
            counts: str | None = None) -> dict[str, float]:
    """Pixel scores per scene, averaged over scenes (the aggregation hil_scores uses)."""
    confs = [score_scenes(predict, [s], norm, tile, threshold, counts) for s in scenes]
    return {"miou": float(np.mean([c.miou for c in confs])), "vessel_iou": float(np.mean([c.vessel_iou for c in confs]))}


def breakdown(xml: bytes, bin_: bytes, data: Any, tile: int, threshold: float, profile: str,
              counts: str | None = None) -> dict[str, dict[str, float]]:
    """In-process scores of one IR under the CPU in f32 and under each isolating profile
    (``counts``: the IR takes counts of that type and normalises them itself)."""
    core = Core()
    scenes = split_arrays(data, "val")
    out = {}
    model = read_ir(xml, bin_, core)
    out["ir-f32"] = _scores(ir_predictor(core.compile_model(model, "CPU", emulation_cpu_config(core))),
                            scenes, data.norm, tile, threshold, counts)
    for label, prof in isolating_profiles(profile).items():
        compiled, _ = compile_twin((xml, bin_), prof, core)
        out[label] = _scores(ir_predictor(compiled), scenes, data.norm, tile, threshold, counts)
    return out


def gap_by_cause(rows: dict[str, dict[str, float]], metric: str) -> dict[str, float]:
    return {
        "rounding": rows["ir-f32"][metric] - rows["rounding"][metric],
        "range": rows["rounding"][metric] - rows["rounding+range"][metric],
        "op_semantics": rows["rounding+range"][metric] - rows["target"][metric],
    }


def train_branches(cfg: dict[str, Any], genome: Genome, data: Any, seed: int,
                   say: Any = lambda *_: None) -> tuple[dict[str, GenomeNet], dict[str, Any]]:
    """The shared FP32 training, then the post-training and the aligned branch from it, on the
    same patch stream; returns both networks (on the CPU) and the training logs."""
    cand, tr = cfg["candidate"], cfg["train"]
    seed_everything(seed, tr["threads"])
    device = torch_device(cand["torch_device"])
    # with the configured land gate, as a candidate of this config is trained and flown: the
    # bundles' manifests (manifest_for) describe that network, its output and its parameters
    net = GenomeNet(genome, land_gate=tr["land_gate"])
    log = {"shared_fp32": fit(net, make_sampler(cfg, data, np.random.default_rng(seed)), cfg, cand["fp32_epochs"],
                              tr["lr"], device)}
    branches: dict[str, GenomeNet] = {}
    for branch in ("post_training", "aligned"):
        b = copy.deepcopy(net)
        stream = make_sampler(cfg, data, np.random.default_rng(seed + 1))
        # Both branches fine-tune with BatchNorm frozen and folded, as the exporter folds it; the
        # post-training branch computes in f32 (profile "fp32": identity numerics, ops as written),
        # so alignment (the projection and the op semantics) is the only difference between them.
        aligner = Aligner.for_profile(cand["profile"] if branch == "aligned" else "fp32")
        log[branch] = fit(b, stream, cfg, cand["aligned_epochs"], tr["lr"] * cand["aligned_lr_scale"], device,
                          aligner, cand["range_penalty"])
        branches[branch] = b.cpu()
        say(f"{branch}: {log[branch]['seconds']:.0f} s, final loss {log[branch]['final_loss']:.4f}")
    return branches, log


def run_ablation(cfg: dict[str, Any], out: Path, genome_arg: str | None = None, progress: bool = True,
                 command: str = "search.ablate.run_ablation()") -> dict[str, Any]:
    """Run the comparison; writes ``OUT/ablation.json``, both bundles and their hil reports."""
    say = print if progress else (lambda *_: None)
    out = Path(out)
    tile, threshold = int(cfg["export"]["tile"]), float(cfg["export"]["threshold"])
    # Any upsampling of the space's vocabulary: the ablation is where half_pixel bilinear, left out
    # of the default search space, is studied.
    gate = cfg["train"]["land_gate"]
    space = SpaceConfig.from_dict({**cfg["space"], "upsamplings": list(UPSAMPLINGS)}, tile, land_gates=(gate,))
    genome = check_genome(parse_genome(genome_arg, cfg), space, within_space=False)
    cand = cfg["candidate"]
    check_recipe(cfg)  # what the branches would fail on only once trained: threshold, profile, device
    check_scoring(cand)
    check_patch(genome.stride, cfg)  # before the data is prepared, not in the first batch
    data = prepare_data(cfg, out / "data")
    say(f"ablation of {genome} ({count_parameters(genome, gate)} parameters): {cand['fp32_epochs']} FP32 epochs, "
        f"then {cand['aligned_epochs']} epochs per branch")
    branches, log = train_branches(cfg, genome, data, int(cfg["evolution"]["seed"]), say)

    result: dict[str, Any] = {"command": command, "genome": genome.to_dict(), "name": str(genome),
                              "parameters": count_parameters(genome, gate), "profile": cand["profile"],
                              "val_seeds": list(data.val_seeds), "data": data.source, "training": log}
    scenes = split_arrays(data, "val")
    # FP32 on host through the same rig and scorer as the device figures: the post-training
    # network exported with f32 weights, run by the runtime on the CPU in f32.
    xml32, bin32, _ = export_ir(branches["post_training"], (1, genome.in_channels, tile, tile), cand["check_target"],
                                fp16_weights=False)
    bundle32 = out / "fp32_host" / "bundle"
    manifest32 = manifest_for(genome, data, cfg, {}, xml32, {"trained_under": "fp32", **log["post_training"]}, "ablate-fp32")
    manifest32["numerics"]["weights"] = "fp32"
    write_bundle(bundle32, xml32, bin32, manifest32)
    host = hil_scores(bundle32, data, out / "fp32_host" / "hil", "CPU")
    result["fp32_host"] = {"miou": host["miou"], "vessel_iou": host["vessel_iou"], "device": host["device"],
                           "how": "f32-weight IR of the post-training network through hil on CPU "
                                  "(INFERENCE_PRECISION_HINT=f32)",
                           "torch_in_process": _scores(torch_predictor(branches["post_training"]), scenes, data.norm,
                                                       tile, threshold)}
    input_dtype = cfg["export"]["input_dtype"]
    counts = None if input_dtype == "float32" else input_dtype
    result["input_dtype"] = input_dtype
    for branch, b in branches.items():
        xml, bin_, _ = export_ir(b, (1, genome.in_channels, tile, tile), cand["check_target"])
        bundle = out / branch / "bundle"
        training = {"trained_under": branch, "command": command, **log[branch]}
        # With counts input the device converts and normalises the tile itself: the range column
        # then sees the counts (u16 above 2048 rounds in FP16) as well as every activation.
        xml, bin_, manifest = with_input_dtype(xml, bin_, manifest_for(genome, data, cfg, {}, xml, training,
                                                                       f"ablate-{branch}"), input_dtype)
        write_bundle(bundle, xml, bin_, manifest)
        device_scores = hil_scores(bundle, data, out / branch / "hil", cand["hil_device"])
        rows = breakdown(xml, bin_, data, tile, threshold, cand["profile"], counts)
        result[branch] = {"device": device_scores, "twin_breakdown": rows,
                          "gap_by_cause_miou": gap_by_cause(rows, "miou"),
                          "gap_by_cause_vessel_iou": gap_by_cause(rows, "vessel_iou")}
        say(f"{branch}: on {device_scores['device']} mIoU {device_scores['miou']:.4f}")
    for metric in ("miou", "vessel_iou"):
        fp32 = result["fp32_host"][metric]
        post, aligned = result["post_training"]["device"][metric], result["aligned"]["device"][metric]
        gap = fp32 - post
        result[f"gap_{metric}"] = gap
        # Below NOISE_GAP the ratio is noise over noise (a few hundred pixels of two scenes).
        result[f"recovered_{metric}"] = (aligned - post) / gap if abs(gap) >= NOISE_GAP else None
    write_json_atomic(out / "ablation.json", result)
    return result


def format_ablation(r: dict[str, Any]) -> str:
    """The ablation as text: the three numbers, the fraction recovered, the twin breakdown."""
    dev = r["post_training"]["device"]["device"]
    data = r.get("data", "synthetic")
    validation = f"validation seeds {r['val_seeds']}" if data == "synthetic" else f"validation samples {r['val_seeds']} of {data}"
    lines = [f"ablation: {r['name']} ({r['parameters']} parameters), profile {r['profile']}, {validation}",
             f"{'':34s} {'mIoU':>8s} {'vessel IoU':>11s}"]
    lines.append(f"{'FP32 on host (' + r['fp32_host']['device'] + ', hil)':34s} {r['fp32_host']['miou']:8.4f} "
                 f"{r['fp32_host']['vessel_iou']:11.4f}")
    t = r["fp32_host"]["torch_in_process"]
    lines.append(f"{'  (torch FP32, in-process scorer)':34s} {t['miou']:8.4f} {t['vessel_iou']:11.4f}")
    for branch, label in (("post_training", "post-training FP16"), ("aligned", "deployment-aligned")):
        d = r[branch]["device"]
        lines.append(f"{label + ' on ' + dev + ' (hil)':34s} {d['miou']:8.4f} {d['vessel_iou']:11.4f}")
    for metric in ("miou", "vessel_iou"):
        rec = r[f"recovered_{metric}"]
        lines.append(f"gap {metric}: {r[f'gap_{metric}']:+.4f}; fraction recovered: "
                     + (f"undefined (|gap| < {NOISE_GAP})" if rec is None else f"{rec:.2f}"))
    lines.append("twin breakdown (in-process scorer), mIoU / vessel IoU:")
    lines.append(f"  {'':16s} " + "  ".join(f"{k:>15s}" for k in ("ir-f32", "rounding", "rounding+range", "target", "ops-only")))
    for branch in ("post_training", "aligned"):
        rows = r[branch]["twin_breakdown"]
        lines.append(f"  {branch:16s} " + "  ".join(f"{rows[k]['miou']:.4f}/{rows[k]['vessel_iou']:.4f}".rjust(15)
                                                    for k in ("ir-f32", "rounding", "rounding+range", "target", "ops-only")))
        g = r[branch]["gap_by_cause_miou"]
        lines.append(f"  {'':16s} mIoU lost to rounding {g['rounding']:+.4f}, range {g['range']:+.4f}, "
                     f"op semantics {g['op_semantics']:+.4f}")
    return "\n".join(lines)
