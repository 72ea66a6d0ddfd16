"""One candidate, end to end: FP32 training, deployment-aligned fine-tuning, FP16 IR, scored through hil.

:func:`evaluate_candidate` is what a worker (a local process or a Ray task) runs for one genome:

1. ``candidate.fp32_epochs`` of FP32 training (BCE + Dice, Adam, cosine decay; :mod:`search.train`);
2. ``candidate.aligned_epochs`` of fine-tuning with the forward pass run the target's way
   (:mod:`search.align`: the profile the twin uses, weights and activations projected with the
   clipped straight-through gradient, the target's Interpolate semantics, BatchNorm folded);
3. export to an FP16 IR, refused if ``runtime.check`` finds an error for the target
   (:mod:`search.export_ir`), and written as a bundle;
4. ``hil.run`` of the bundle on every validation scene on ``candidate.hil_device`` (``flight``: MYRIAD
   if attached, else NPU, else the Myriad X twin): on-device mIoU, vessel IoU, F1, the runtime's
   measured latency and throughput, and the Myriad X latency *estimate*.

Data (``[data] source``): ``synthetic`` scenes, whose validation scenes are seeds
``data.val_seed_start ..`` (>= ``data.min_seed``: never the held-out test seeds below 100), written
once per search as GeoTIFFs with their truth; or a real data set through flightsim's loaders
(``"hrsid-mini:../shared/data/hrsid-mini"``, any ``KIND:PATH`` of :data:`flightsim.sources.SOURCES`),
split once by a seeded permutation into test (held out: never trained on nor selected on),
validation and training samples (:func:`prepare_data`, ``data/split.json``).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import socket
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runtime.bundle import write_bundle
from search.align import Aligner
from search.data import (Normalization, PatchSampler, SamplingOptions, SceneArrays, estimate_normalization, load_scenes,
                         synthetic_kwargs)
from search.evaluate import (choose_postprocessing, confusion_of, golden_tile, object_scores, predict_scenes,
                             torch_predictor)
from search.export import INPUT_NAME, OUTPUT_NAME, ir_opsets
from search.export_ir import TargetCheckError, export_ir
from runtime.golden import with_golden
from search.input_types import with_input_dtype
from search.network import GenomeNet
from search.space import Genome, count_parameters
from search.train import adam_cosine, bce_dice_loss, seed_everything

#: Written into every record, so a resumed search can tell an old record format from a new one.
RECORD_VERSION = 1


@dataclass(frozen=True)
class SearchData:
    """Where a search's data lives (picklable: sent to every worker)."""

    root: Path
    train_seeds: tuple[int, ...]
    val_seeds: tuple[int, ...]
    norm: Normalization
    #: ``"synthetic"`` (the ids are scene seeds) or a flightsim source spec (the ids are sample
    #: indices), or a tuple of specs (indices into their concatenation).
    source: str | tuple[str, ...] = "synthetic"
    #: For a concatenated source: which data set each training sample comes from (source weights).
    train_groups: tuple[int, ...] = ()

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    def val_scene(self, seed: int) -> tuple[Path, Path]:
        """(scene GeoTIFF, truth mask GeoTIFF) of validation seed ``seed``.

        The generator's own mask, the one training uses; its GeoJSON polygons rasterised again by
        the rig differ from it at vessel edges (found: 0.008 mIoU on two 1024 px scenes).
        """
        d = self.root / "val" / f"seed_{seed}"
        return d / "scene.tif", d / "truth_mask.tif"


_ARRAYS: dict[tuple[Path, str], list[SceneArrays]] = {}


def _arrays(data: SearchData, split: str) -> list[SceneArrays]:
    """The scenes of ``split`` ("train" or "val") as arrays, loaded once per process."""
    key = (data.root, split)
    if key not in _ARRAYS:
        with np.load(data.root / f"{split}.npz") as f:
            _ARRAYS[key] = [SceneArrays(int(s), f[f"image_{s}"], f[f"mask_{s}"]) for s in f["seeds"]]
    return _ARRAYS[key]


def _save_arrays(path: Path, ids: list[int], scenes: list[SceneArrays]) -> None:
    arrays = {"seeds": np.array(ids)}
    for s in scenes:
        arrays[f"image_{s.seed}"], arrays[f"mask_{s.seed}"] = s.image, s.mask
    np.savez(path.with_suffix(".tmp.npz"), **arrays)
    path.with_suffix(".tmp.npz").replace(path)


def split_source(n: int, data: dict[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) sample indices of a real source of ``n`` samples: a permutation seeded with
    ``split_seed``; ``test_fraction`` and ``val_fraction`` of the samples (at least one each).

    Raises:
        ValueError: when fewer than three samples would leave a split empty.
    """
    order = [int(i) for i in np.random.default_rng(data["split_seed"]).permutation(n)]
    n_test = max(1, round(n * data["test_fraction"]))
    n_val = max(1, round(n * data["val_fraction"]))
    if n - n_test - n_val < 1:
        raise ValueError(f"a source of {n} samples cannot give {n_test} test, {n_val} validation and at least one "
                         "training sample; lower [data] test_fraction / val_fraction or use more samples")
    return sorted(order[n_test + n_val:]), sorted(order[n_test:n_test + n_val]), sorted(order[:n_test])


def _absolute(spec: str) -> str:
    """``KIND:PATH`` with PATH made absolute: workers (a Ray cluster's included) need not share this
    process's directory."""
    from flightsim.sources import parse_spec

    kind, rest = parse_spec(spec)
    return f"{kind}:{Path(rest).resolve()}" if rest and Path(rest).exists() else spec


def source_spec(source: str | list[str]) -> str | tuple[str, ...]:
    """``[data] source`` as a hashable spec: one ``KIND:PATH``, or a tuple of them (concatenated)."""
    return _absolute(source) if isinstance(source, str) else tuple(_absolute(s) for s in source)


def _prepare_source(cfg: dict[str, Any], root: Path) -> SearchData:
    """:func:`prepare_data` for real data: arrays of the training and validation samples.

    A list of sources is concatenated (:class:`flightsim.sources.Concat`) and each part is split on
    its own, with the same seed and fractions, so that every data set keeps its own held-out test
    samples; the ids are indices into the concatenation.
    """
    import json

    from flightsim.sources import Concat, open_source

    spec = source_spec(cfg["data"]["source"])
    source = open_source(spec)
    parts = source.parts if isinstance(source, Concat) else [source]
    offsets = source.offsets if isinstance(source, Concat) else [0]
    train, val, test = [], [], []
    for part, offset in zip(parts, offsets):
        for ids, part_ids in zip((train, val, test), split_source(len(part), cfg["data"])):
            ids.extend(offset + i for i in part_ids)
    root.mkdir(parents=True, exist_ok=True)
    split = {"source": spec if isinstance(spec, str) else list(spec), "split_seed": cfg["data"]["split_seed"],
             "train": train, "val": val, "test": test, "names": {str(i): source[i].name for i in range(len(source))}}
    split_path = root / "split.json"
    if not (split_path.exists() and json.loads(split_path.read_text()) == split):
        bands = int(cfg["model"]["in_channels"])
        for name, ids in (("train", train), ("val", val)):
            scenes = []
            for i in ids:
                sample = source[i].load()
                if sample.count != bands or sample.mask is None:
                    raise ValueError(f"{spec}: sample {sample.name!r} has {sample.count} bands and "
                                     f"{'a' if sample.mask is not None else 'no'} mask; the search needs "
                                     f"{bands} bands (model.in_channels) and a truth mask")
                scenes.append(SceneArrays(i, np.asarray(sample.image), sample.mask.astype(np.uint8)))
            _save_arrays(root / f"{name}.npz", ids, scenes)
        split_path.write_text(json.dumps(split, indent=1))
    groups = tuple(source.part_of(i) if isinstance(source, Concat) else 0 for i in train)
    return _normalised(SearchData(root, tuple(train), tuple(val), Normalization((0.0,), (1.0,)), spec, groups))


def make_sampler(cfg: dict[str, Any], data: SearchData, rng: np.random.Generator) -> PatchSampler:
    """The training patch sampler the config asks for (``[train]`` sampling and augmentation,
    ``[data] source_weights``), over the training arrays of ``data``."""
    opts = SamplingOptions.from_config(cfg["train"], cfg["data"])
    return PatchSampler(_arrays(data, "train"), data.norm, int(cfg["train"]["patch"]), opts, rng,
                        groups=list(data.train_groups) or None)


def _normalised(data: SearchData) -> SearchData:
    """``data`` with the normalisation estimated from its training arrays (as written to disk)."""
    return replace(data, norm=estimate_normalization(_arrays(data, "train")))


def prepare_data(cfg: dict[str, Any], root: Path) -> SearchData:
    """The training and validation data, once (arrays, and GeoTIFFs for hil); idempotent.

    ``[data] source``: ``"synthetic"`` generates scenes from the seed ranges; anything else is a
    flightsim source spec, split by :func:`split_source`.
    """
    from flightsim.synthetic import generate_scene, write_scene

    from search.baseline import seed_ranges

    if cfg["data"]["source"] != "synthetic":
        return _prepare_source(cfg, root)
    train, val = seed_ranges(cfg["data"])
    root.mkdir(parents=True, exist_ok=True)
    for split, seeds, size in (("train", train, cfg["data"]["train_scene_size"]),
                               ("val", val, cfg["data"]["val_scene_size"])):
        path = root / f"{split}.npz"
        if path.exists():
            with np.load(path) as f:
                image = f[f"image_{seeds[0]}"]
                if ([int(s) for s in f["seeds"]] == seeds and image.shape[-1] == size
                        and image.dtype.name == cfg["data"]["scene_dtype"]):
                    continue
        kwargs = synthetic_kwargs(cfg["data"], size)
        _save_arrays(path, seeds, load_scenes(seeds, kwargs))
        if split == "val":
            for seed in seeds:
                write_scene(generate_scene(seed, **kwargs), root / "val" / f"seed_{seed}")
    return _normalised(SearchData(root, tuple(train), tuple(val), Normalization((0.0,), (1.0,))))


def torch_device(name: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fit(net: GenomeNet, sampler: PatchSampler, cfg: dict[str, Any], epochs: int, lr: float,
        device: torch.device, aligner: Aligner | list[Aligner] | None = None,
        range_penalty: float = 0.0) -> dict[str, Any]:
    """Train ``net`` for ``epochs`` x ``train.steps_per_epoch`` steps; FP32, or aligned to ``aligner``.

    A list of aligners is robust alignment: each step's forward pass is drawn from the list
    (seeded), so the network learns to hold under every device hypothesis of the set."""
    tr = cfg["train"]
    net.to(device).train()
    aligners = aligner if isinstance(aligner, list) else [aligner]
    draws = np.random.default_rng(len(aligners))
    net.aligner = aligners[0]
    opt, sched = adam_cosine(net.parameters(), lr, tr["weight_decay"], epochs * tr["steps_per_epoch"])
    losses: list[float] = []
    start = time.perf_counter()
    for _ in range(epochs * tr["steps_per_epoch"]):
        if len(aligners) > 1:
            net.aligner = aligner = aligners[int(draws.integers(len(aligners)))]
        images, masks = sampler.batch(tr["batch"])
        logits = net.logits(torch.from_numpy(images).to(device))
        loss = bce_dice_loss(logits, torch.from_numpy(masks).to(device), tr["dice_weight"])
        if aligner is not None and range_penalty:
            loss = loss + range_penalty * aligner.range_penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
    net.aligner = None
    net.eval()
    return {"seconds": time.perf_counter() - start, "final_loss": float(np.mean(losses[-tr["steps_per_epoch"]:] or [math.nan]))}


def train_genome(genome: Genome, cfg: dict[str, Any], data: SearchData, seed: int,
                 fp32_epochs: int, aligned_epochs: int) -> tuple[GenomeNet, GenomeNet, dict[str, Any]]:
    """FP32 training then aligned fine-tuning; returns (FP32 net, aligned net, training log)."""
    tr, cand = cfg["train"], cfg["candidate"]
    rng = seed_everything(seed, tr["threads"])
    device = torch_device(cand["torch_device"])
    sampler = make_sampler(cfg, data, rng)
    net = GenomeNet(genome)
    log = {"torch_device": str(device), "fp32": fit(net, sampler, cfg, fp32_epochs, tr["lr"], device)}
    fp32_net = copy.deepcopy(net).cpu()
    robust = list(cand["robust_profiles"])
    aligner: Aligner | list[Aligner] = ([Aligner.for_profile(p) for p in robust] if robust
                                        else Aligner.for_profile(cand["profile"]))
    log["aligned"] = fit(net, sampler, cfg, aligned_epochs, tr["lr"] * cand["aligned_lr_scale"], device,
                         aligner, cand["range_penalty"])
    return fp32_net, net.cpu(), log


def choose_on_validation(probs: list[np.ndarray], cfg: dict[str, Any], data: SearchData) -> dict[str, Any] | None:
    """With ``[export] choose_postprocessing``: object F1 on the validation samples (``probs``:
    the network's probability maps of them) for each threshold and smallest vessel of
    ``[export]``, and the pair chosen (None when off)."""
    exp = cfg["export"]
    if not exp["choose_postprocessing"]:
        return None
    rows = object_scores(probs, _arrays(data, "val"), [float(t) for t in exp["thresholds"]],
                         [int(a) for a in exp["min_areas_px"]])
    return {"chosen": choose_postprocessing(rows), "table": rows,
            "on": "validation split, pooled object F1 at IoU >= 0.5, torch FP32 forward of the aligned network"}


def manifest_for(genome: Genome, data: SearchData, cfg: dict[str, Any], metrics: dict[str, Any],
                 xml: bytes, training: dict[str, Any], name: str) -> dict[str, Any]:
    """A flight-model manifest: input, output, numerics, genome, parameters, metrics, opsets."""
    exp = cfg["export"]
    tile = int(exp["tile"])
    return {
        "name": name,
        "input": {"shape": [1, genome.in_channels, tile, tile], "layout": "NCHW", "name": INPUT_NAME,
                  "bands": list(exp["bands"]), "dtype": "float32", "normalization": data.norm.to_manifest()},
        "output": {"name": OUTPUT_NAME, "meaning": "vessel probability per pixel", "shape": [1, 1, tile, tile],
                   "threshold": float(exp["threshold"]), "activation": "sigmoid"}
        | ({"threshold": float(post["threshold"]), "min_area_px": int(post["min_area_px"])}
           if (post := (training.get("postprocessing") or {}).get("chosen")) else {}),
        "numerics": {"weights": "fp16", "trained_under": training.get("trained_under", "fp32"),
                     "profile": cfg["candidate"]["profile"]},
        "trained_for": {"modality": cfg["data"]["modality"], "gsd_m": [float(g) for g in cfg["data"]["gsd_m"]],
                        "data": data.source if isinstance(data.source, str) else list(data.source)},
        "genome": genome.to_dict(),
        "parameters": count_parameters(genome),
        "opsets": ir_opsets(xml),
        "training": training,
        "metrics": metrics,
    }


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def hil_scores(bundle_dir: Path, data: SearchData, report_root: Path, device: str,
               profile: str | None = None) -> dict[str, Any]:
    """``hil.run`` on the validation data; the mean of each scene's (or sample's) pixel scores.

    Synthetic scenes run one ``hil.run`` each; a real data set runs one over its validation samples
    (a :class:`flightsim.sources.Subset`), whose per-sample scores are averaged the same way, with
    the rig's pooled figures kept beside them. The mean is what the in-process scorer
    (:mod:`search.evaluate`) computes too; the pooled figures can differ a lot (one harbour tile
    full of false alarms dominates a pooled vessel IoU).
    """
    import hil

    if not data.synthetic:
        from flightsim.sources import Subset, open_source

        subset = Subset(open_source(data.source), data.val_seeds, role="val")
        report = hil.run(subset, bundle_dir, report_root / "val", device=device, profile=profile).report
        per_sample = [{k: s.get(k) for k in ("name", "miou", "vessel_iou", "f1")} for s in report["per_scene"]]
        return {k: report.get(k) for k in ("device", "profile", "estimated_latency_ms", "throughput_tiles_per_s",
                                           "tiles_lost")} | {
            "miou": _mean(per_sample, "miou"), "vessel_iou": _mean(per_sample, "vessel_iou"),
            "f1": _mean(per_sample, "f1"), "pooled": {k: report.get(k) for k in ("miou", "vessel_iou", "f1")},
            "runtime_latency_p50_ms": report["runtime_latency_ms"]["p50"], "val_seeds": list(data.val_seeds),
            "source": data.source, "per_scene": per_sample, "bundle_sha256": report["model"]["sha256"],
            "aggregation": "mean over validation samples of each sample's pixel scores"}
    per_scene = []
    for seed in data.val_seeds:
        scene, truth = data.val_scene(seed)
        report = hil.run(scene, bundle_dir, report_root / f"seed_{seed}", device=device, truth=truth,
                         profile=profile).report
        per_scene.append({k: report.get(k) for k in (
            "miou", "vessel_iou", "precision", "recall", "f1", "tiles_sent", "tiles_processed", "tiles_lost",
            "throughput_tiles_per_s", "estimated_latency_ms", "device", "profile")}
            | {"seed": seed, "runtime_latency_p50_ms": report["runtime_latency_ms"]["p50"],
               "latency_p50_ms": report["latency_ms"]["p50"], "bundle_sha256": report["model"]["sha256"]})
    return {
        "device": per_scene[0]["device"], "profile": per_scene[0]["profile"],
        "miou": _mean(per_scene, "miou"), "vessel_iou": _mean(per_scene, "vessel_iou"), "f1": _mean(per_scene, "f1"),
        "estimated_latency_ms": per_scene[0]["estimated_latency_ms"],
        "runtime_latency_p50_ms": _mean(per_scene, "runtime_latency_p50_ms"),
        "throughput_tiles_per_s": _mean(per_scene, "throughput_tiles_per_s"),
        "tiles_lost": int(sum(s["tiles_lost"] for s in per_scene)),
        "val_seeds": list(data.val_seeds), "per_scene": per_scene, "bundle_sha256": per_scene[0]["bundle_sha256"],
        "aggregation": "mean over validation scenes of each scene's pixel scores",
    }


def evaluate_candidate(genome: Genome, cfg: dict[str, Any], data: SearchData, out_dir: Path) -> dict[str, Any]:
    """Train, align, export, check and score ``genome`` through hil; returns the candidate record.

    Never raises for a bad candidate: a target-check error or a crash becomes a record with
    ``status`` ``"infeasible"`` or ``"failed"`` (persisted, so it is not retried on resume).
    """
    from search.fitness import accuracy, fitness, latency_used

    t0 = time.perf_counter()
    record: dict[str, Any] = {"version": RECORD_VERSION, "key": genome.key, "genome": genome.to_dict(),
                              "name": str(genome), "parameters": count_parameters(genome),
                              # where it ran: on a cluster, the first place to look when one is slow
                              "worker": {"host": socket.gethostname(), "pid": os.getpid()}}
    cand_dir = out_dir / "candidates" / genome.key
    shutil.rmtree(cand_dir, ignore_errors=True)
    try:
        cand = cfg["candidate"]
        seed = int(cfg["evolution"]["seed"])
        _, net, log = train_genome(genome, cfg, data, seed, cand["fp32_epochs"], cand["aligned_epochs"])
        tile, threshold = int(cfg["export"]["tile"]), float(cfg["export"]["threshold"])
        val = _arrays(data, "val")
        probs = predict_scenes(torch_predictor(net), val, data.norm, tile)  # once, for both uses below
        post = choose_on_validation(probs, cfg, data)
        threshold = float(post["chosen"]["threshold"]) if post else threshold
        host = confusion_of(probs, val, threshold)
        xml, bin_, findings = export_ir(net, (1, genome.in_channels, tile, tile), cand["check_target"])
        training = {"trained_under": f"fp32 {cand['fp32_epochs']} epochs, then {cand['profile']}-aligned "
                                    f"{cand['aligned_epochs']} epochs", "seed": seed, **log,
                    "data": data.source,
                    **({"train_seeds": [data.train_seeds[0], data.train_seeds[-1]]} if data.synthetic
                       else {"train_samples": list(data.train_seeds)})}
        if post:
            training["postprocessing"] = post
        bundle_dir = cand_dir / "bundle"
        manifest = manifest_for(genome, data, cfg, {}, xml, training, f"nas-{genome.key}")
        write_bundle(bundle_dir, *with_input_dtype(xml, bin_, manifest, cfg["export"]["input_dtype"]))
        # expected output measured on the flight device itself: the twin remaps what the CPU runs as written
        with_golden(bundle_dir, golden_tile(val, tile), device=cand["hil_device"])
        t_eval = time.perf_counter()
        if cand["robust_profiles"]:
            # Scored under every hypothesis of the set; the fitness sees the worst of them.
            by_profile = {p: hil_scores(bundle_dir, data, cand_dir / "hil" / p, cand["hil_device"], p)
                          for p in cand["robust_profiles"]}
            metric = cfg["fitness"]["accuracy"]
            worst = min(by_profile, key=lambda p: accuracy({"device_metrics": by_profile[p]}, metric) or 0.0)
            device = {**by_profile[worst], "worst_of": sorted(by_profile),
                      "by_profile": {p: {k: m.get(k) for k in ("miou", "vessel_iou", "f1", "pooled")}
                                     for p, m in by_profile.items()}}
        else:
            device = hil_scores(bundle_dir, data, cand_dir / "hil", cand["hil_device"])
        record.update(status="ok", device_metrics=device,
                      host_fp32_aligned_weights={"miou": host.miou, "vessel_iou": host.vessel_iou,
                                                 "note": "torch forward in FP32 of the aligned network"},
                      check_findings=[f.to_json() for f in findings if f.severity != "info"],
                      training=training, hil_seconds=time.perf_counter() - t_eval, bundle=str(bundle_dir))
        record["fitness"] = fitness(record, cfg["fitness"], cfg["space"]["max_parameters"])
        record["fitness_latency"] = latency_used(record, cfg["fitness"]["latency"])[1]
    except TargetCheckError as err:
        record.update(status="infeasible", reason=str(err), fitness=None)
    except Exception as err:  # a crashed candidate is a result, not the end of the search
        record.update(status="failed", reason=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(limit=5), fitness=None)
    record["seconds"] = time.perf_counter() - t0
    return record
