"""Train a genome on another machine (a GPU box with torch but no OpenVINO, rasterio or the data),
then export and score it here exactly as the search scores a candidate.

Three steps, the middle one on the other machine:

    # here: the training arrays and what training needs to know, in one folder (a few tens of MB)
    .venv/bin/python scripts/train_elsewhere.py pack --config configs/sar.toml \\
        --genome models/sar/manifest.json --out pack
    # there (torch, numpy, Pillow and this repository; CUDA when torch sees it, as
    # [candidate] torch_device = "auto")
    python3 scripts/train_elsewhere.py train --pack pack --seeds 0 1 2 --fp32-epochs 60 \\
        --aligned-epochs 4 --out trained
    # here: each trained network exported, checked, given its golden tile and scored through hil on
    # the validation split, as search.candidate.evaluate_candidate does for a candidate it trained
    .venv/bin/python scripts/train_elsewhere.py finish --pack pack --trained trained \\
        --out out/elsewhere [--second-stage]

The training is :func:`search.train.train_genome`, the search's own (FP32, then aligned to the
target's numerics), with the epochs given; only the place and the budget differ. ``finish`` scores
with the config and data the pack was made from (the full arrays stay here, in ``PACK.data``
beside the pack) and refuses data that has changed since. The validation figures are what a
recipe may be chosen on; the test split is never read here.
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import json
import os
import pickle
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from runtime.bundle import sha256  # noqa: E402
from search.dataset import SearchData  # noqa: E402
from search.network import GenomeNet  # noqa: E402
from search.space import Genome  # noqa: E402
from search.train import train_genome  # noqa: E402

#: What ``pack`` writes: the config, the genome and the data's description.
META = "meta.pkl"
#: The training arrays without their images (compressed), and the images' sha256 and where each is.
REST = "train_rest.npz"
#: The image files whose decoded pixels are a training image, byte for byte (a SAR chip's JPEG is a
#: tenth of its pixels: the arrays themselves are far over what a device call can carry).
FILES = "images"
#: Present while ``pack`` writes a pack (a killed one leaves it, and is made again in place).
PACKING = ".packing"
#: Beside the rebuilt ``data/train.npz``: the sha256 of the REST it was rebuilt from, so that a pack
#: made again in the same folder is unpacked again rather than trained on stale arrays.
UNPACKED_FROM = "unpacked_from"


def _key(image: np.ndarray) -> str:
    """An array's identity: its bytes, shape and dtype (sha256)."""
    return sha256(np.ascontiguousarray(image).tobytes() + str(image.shape).encode() + image.dtype.str.encode())


def _data_root(folder: Path) -> Path:
    """Where ``pack`` keeps the full data of the pack in ``folder``: beside it, so that it does not travel."""
    return folder.parent / (folder.name + ".data")


def _decode(path: Path) -> np.ndarray:
    """A JPEG or PNG as the search holds it: bands first, a grey image repeated to three bands."""
    from PIL import Image

    with Image.open(path) as im:
        pixels = np.asarray(im)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[None], 3, axis=0)
    else:
        pixels = pixels.transpose(2, 0, 1)
    return np.ascontiguousarray(pixels)


def _compact(data_root: Path, image_folders: list[Path], out: Path) -> dict[str, int]:
    """Write ``train.npz`` of ``data_root`` as REST plus the image files that decode to its images."""
    by_key: dict[str, Path] = {}
    for folder in image_folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                try:
                    by_key.setdefault(_key(_decode(path)), path)
                except Exception:  # noqa: BLE001 - a file PIL cannot read is simply not used
                    continue
    (out / FILES).mkdir(parents=True, exist_ok=True)
    rest: dict[str, np.ndarray] = {}
    counts = {"as_files": 0, "as_arrays": 0}
    with np.load(data_root / "train.npz") as f:
        for name in f.files:
            array = f[name]
            if not name.startswith("image_"):
                rest[name] = array
                continue
            key = _key(array)
            rest["sha256_" + name] = np.array(key)
            if key in by_key:
                target = out / FILES / (name + by_key[key].suffix.lower())
                shutil.copyfile(by_key[key], target)
                counts["as_files"] += 1
            else:
                rest[name] = array
                counts["as_arrays"] += 1
    np.savez_compressed(out / REST, **rest)
    return counts


def _unpack(folder: Path) -> None:
    """Rebuild ``data/train.npz`` from REST and the image files, unless it was rebuilt from this very
    REST; refuses any image whose pixels differ. Several ``train`` processes may start on one pack at
    once: one rebuilds (under a lock), the others wait, and the file appears whole (renamed into
    place) or not at all."""
    target = folder / "data" / "train.npz"
    stamp = target.parent / UNPACKED_FROM
    rest_id = sha256((folder / REST).read_bytes())
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and stamp.exists() and stamp.read_text() == rest_id:
            return
        arrays: dict[str, np.ndarray] = {}
        with np.load(folder / REST) as f:
            for name in f.files:
                if name.startswith("sha256_"):
                    image = name[len("sha256_"):]
                    if image in f.files:
                        pixels = f[image]
                    else:
                        files = sorted((folder / FILES).glob(image + ".*"))
                        if not files:
                            raise FileNotFoundError(f"{folder / FILES}: no file for {image}; the pack is incomplete")
                        pixels = _decode(files[0])
                    if _key(pixels) != str(f[name]):
                        raise ValueError(f"{image}: the pixels decoded here differ from those packed (another "
                                         "JPEG decoder, or a pack from an older version of this script: pack again)")
                    arrays[image] = pixels
                elif not name.startswith("image_"):
                    arrays[name] = f[name]
        partial = target.with_name(f"train.{os.getpid()}.tmp.npz")
        np.savez(partial, **arrays)
        partial.replace(target)
        stamp.write_text(rest_id)


def pack(config: Path, genome_arg: str | None, out: Path) -> Path:
    """Prepare the data of ``config`` beside ``out`` (:func:`_data_root`) and write what ``train``
    needs to ``out``."""
    from flightsim.sources import parse_spec
    from search.ablate import parse_genome
    from search.config import load_config
    from search.dataset import prepare_data, source_spec

    cfg = load_config(config)
    genome = parse_genome(genome_arg, cfg)
    data = prepare_data(cfg, _data_root(out))
    specs = source_spec(cfg["data"]["source"])
    # the folders (or a file's folder) the data sets read from; synthetic scenes have none
    paths = [Path(parse_spec(spec)[1]) for spec in ([specs] if isinstance(specs, str) else specs)
             if parse_spec(spec)[0] != "synthetic"]
    # a pack made again in the same folder starts empty: no image or rebuilt array of the last one
    # PACKING marks a pack being made: one killed half-way is made again in place, not refused
    if out.exists() and any(out.iterdir()) and not (out / META).exists() and not (out / PACKING).exists():
        raise ValueError(f"--out {out} holds files and is not a pack: give a new folder")
    out.mkdir(parents=True, exist_ok=True)
    (out / PACKING).touch()
    for part in (META, REST, FILES, "data"):
        if (out / part).is_dir():
            shutil.rmtree(out / part)
        else:
            (out / part).unlink(missing_ok=True)
    counts = _compact(data.root, [p if p.is_dir() else p.parent for p in paths], out)
    with open(out / META, "wb") as f:
        pickle.dump({"cfg": cfg, "genome": genome.to_dict(), "data": data, "config": str(config)}, f)
    (out / PACKING).unlink()
    print(f"{out}: {counts['as_files']} training images as their files, {counts['as_arrays']} as arrays")
    return out


def pack_id(folder: Path) -> str:
    """The pack's identity: the sha256 of its META and of its REST (the training arrays), so that a
    pack made again in the same folder, or another pack, is not taken for it. ``train`` writes it
    into each network it saves, and ``finish`` refuses a network trained from another."""
    return sha256((folder / META).read_bytes() + (folder / REST).read_bytes())


def _read_meta(folder: Path) -> dict[str, Any]:
    """What ``pack`` wrote to META: ``cfg``, ``genome`` (a dict), ``data`` (SearchData), ``config``."""
    with open(folder / META, "rb") as f:
        return pickle.load(f)


def _load_pack(folder: Path) -> tuple[dict[str, Any], Genome, SearchData]:
    """The pack's config, genome and data, its arrays rebuilt under ``folder/data``."""
    _unpack(folder)
    meta = _read_meta(folder)
    # the arrays are read from wherever the pack is now
    return meta["cfg"], Genome.from_dict(meta["genome"]), replace(meta["data"], root=(folder / "data").resolve())


#: Optimiser steps of each phase that ``--budget-s`` times before it plans a training.
PROBE_STEPS = 10

#: What the projection adds to the probed steps' time: the steps of a long training vary with the
#: machine's load, and a training that overruns its call's limit returns nothing.
PROJECTION_MARGIN = 1.2


def projected_seconds(genome: Genome, cfg: dict[str, Any], data: SearchData, fp32_epochs: int,
                      aligned_epochs: int) -> float:
    """The time ``train_genome`` would take here, from :data:`PROBE_STEPS` timed steps of each
    phase (a throwaway network, the same loop, device and machine load) and
    :data:`PROJECTION_MARGIN`: a remote call has a hard time limit, and a training killed by it
    returns nothing.

    The timed probe follows an untimed one: a GPU's first steps in a process pay for its context,
    kernel choice and memory pool, once. A projection that timed them (until 2026-12-04) was 1.8 to
    3.3 times what the H200's trainings then took (261 s for 146, 660-750 s for 225), and a budget
    that would have held a 120 + 4 training refused it (docs/search.md "Scale")."""
    probe = copy.deepcopy(cfg)
    probe["train"]["steps_per_epoch"] = PROBE_STEPS
    train_genome(genome, probe, data, 0, 1, 1)
    _, _, log = train_genome(genome, probe, data, 0, 1, 1)
    steps = cfg["train"]["steps_per_epoch"]
    probed = (log["fp32"]["seconds"] * fp32_epochs + log["aligned"]["seconds"] * aligned_epochs) * steps / PROBE_STEPS
    return PROJECTION_MARGIN * probed


def train(folder: Path, seeds: list[int], fp32_epochs: int, aligned_epochs: int, out: Path,
          genome_file: Path | None = None, budget_s: float | None = None) -> None:
    """Train the pack's genome (or that of ``genome_file``: a genome's JSON or a bundle manifest)
    once per seed; writes ``out/NAME_seed_S_F_A.pt`` (aligned weights and training log).

    Raises:
        ValueError: with ``budget_s``, when the trainings asked for are projected
            (:func:`projected_seconds`) to take longer than that, before any of them starts.
    """
    cfg, genome, data = _load_pack(folder)
    if genome_file is not None:
        spec = json.loads(genome_file.read_text())
        genome = Genome.from_dict(spec.get("genome", spec))
    if budget_s is not None:
        need = len(seeds) * projected_seconds(genome, cfg, data, fp32_epochs, aligned_epochs)
        if need > budget_s:
            raise ValueError(f"{len(seeds)} training(s) of {fp32_epochs} + {aligned_epochs} epochs would take about "
                             f"{need:.0f} s here, over --budget-s {budget_s:g}: ask for fewer epochs or seeds")
        print(f"projected {need:.0f} s of {budget_s:g}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    pack = pack_id(folder)  # once: it reads the whole pack
    for seed in seeds:
        t0 = time.perf_counter()
        _, net, log = train_genome(genome, cfg, data, seed, fp32_epochs, aligned_epochs)
        # the training-only land head (no land gate) is not part of the flight network
        state = {k: v for k, v in net.state_dict().items() if not k.startswith("land_head.")}
        torch.save({"state": state, "log": log, "seed": seed, "fp32_epochs": fp32_epochs, "pack": pack,
                    "aligned_epochs": aligned_epochs, "genome": genome.to_dict(),
                    "where": {"torch": str(torch.__version__), "device": log["torch_device"],
                              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}},
                   out / f"{genome.key[:8]}_seed_{seed}_{fp32_epochs}_{aligned_epochs}.pt")
        print(f"seed {seed}: {fp32_epochs}+{aligned_epochs} epochs in {time.perf_counter() - t0:.0f} s, "
              f"final loss {log['aligned']['final_loss']:.4f}", flush=True)


def finish(folder: Path, trained: Path, out: Path, second_stage: bool = False,
           only: str = "*") -> list[dict[str, Any]]:
    """Export and score each ``trained/ONLY.pt`` on the validation split with the pack's config and
    data; writes ``out/study.json`` after each run (a failed run is a row with its reason).

    ``second_stage``: each bundle also gets its own second stage as the search fits one
    (:func:`search.discriminate.discriminate` of ``[export] discriminator_kind``: fitted on the
    training split, its cut chosen on validation), whose validation F1 is recorded.

    Raises:
        ValueError: when no trained file matches ``only``, or the data prepared here from the
            pack's config is not the data the pack was made from (the sources changed since).
    """
    from runtime.host import host_line
    from search.candidate import evaluate_candidate
    from search.dataset import prepare_data

    runs = sorted(trained.glob(f"{only}.pt"))
    if not runs:
        raise ValueError(f"no {only}.pt in {trained}: --only is a glob of the names without .pt")
    meta = _read_meta(folder)
    cfg = meta["cfg"]
    data = prepare_data(cfg, _data_root(folder))
    if replace(data, root=meta["data"].root) != meta["data"]:
        raise ValueError(f"the data prepared from {meta['config']} is no longer the data {folder} was packed "
                         "from (another split or normalisation): pack again")
    saved_runs = [(path, torch.load(path, map_location="cpu", weights_only=True)) for path in runs]  # plain data
    ours = pack_id(folder)
    others = [path.name for path, saved in saved_runs if saved.get("pack") != ours]
    if others:  # its record would claim this pack's data, seeds and normalisation
        raise ValueError(f"{others} were not trained from the pack in {folder} (another pack, the pack made again, "
                         f"or trained before packs were named): train them again from this pack")
    out.mkdir(parents=True, exist_ok=True)
    study = {"host": host_line(), "config": meta["config"], "scored_on": "validation split, twin", "runs": []}
    for path, saved in saved_runs:
        genome = Genome.from_dict(saved["genome"])
        c = copy.deepcopy(cfg)
        c["evolution"]["seed"] = saved["seed"]
        net = GenomeNet(genome, land_gate=c["train"]["land_gate"])
        net.load_state_dict(saved["state"])
        net.eval()
        log = saved["log"] | {"where": saved["where"]}
        record = evaluate_candidate(genome, c, data, out / path.stem, trained=(net, log))
        row: dict[str, Any] = {"run": path.stem, "genome": str(genome), "seed": saved["seed"],
                               "epochs": [saved["fp32_epochs"], saved["aligned_epochs"]], "where": saved["where"],
                               "train_seconds": saved["log"]["fp32"]["seconds"] + saved["log"]["aligned"]["seconds"],
                               "status": record["status"]}
        study["runs"].append(row)
        if record["status"] != "ok":
            row["reason"] = record.get("reason")
            print(f"{path.stem}: {record['status']}: {record.get('reason')}", flush=True)
        else:
            metrics = record["device_metrics"]  # real data: pooled over the split; synthetic: per scene
            pooled = metrics.get("pooled") or {k: metrics.get(k) for k in ("miou", "vessel_iou", "f1")}
            row.update(pooled_val=pooled, postprocessing=(record["training"].get("postprocessing") or {}).get("chosen"),
                       fitness=record["fitness"], bundle=record["bundle"],
                       trained_under=record["training"]["trained_under"])
            if second_stage:
                from search.discriminate import discriminate

                run_dir = out / path.stem
                stage = discriminate(Path(record["bundle"]), data.root / "split.json", run_dir / "discriminated",
                                     run_dir / "discriminate_work", kind=c["export"]["discriminator_kind"],
                                     cut_by=c["export"]["discriminator_cut_by"])
                row["second_stage"] = {k: stage[k] for k in ("kind", "cut_by", "cut", "val_f1", "val_outline_iou",
                                                             "val_f1_cuts_replaced")}
            stage_f1 = f", with its second stage {row['second_stage']['val_f1']:.3f}" if second_stage else ""
            how = "pooled" if metrics.get("pooled") else "mean over scenes of"
            print(f"{path.stem}: {how} validation vessel IoU {pooled['vessel_iou']:.3f}, F1 {pooled['f1']:.3f}"
                  + stage_f1, flush=True)
        (out / "study.json").write_text(json.dumps(study, indent=2))
    return study["runs"]


def main(argv: list[str] | None = None) -> int:
    """The command line: ``pack``, ``train`` or ``finish`` (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack", help="prepare the training data and what training needs, here")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--genome", help="JSON, a JSON file or a bundle manifest (default: [ablate])")
    p.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("train", help="train the pack's genome (torch, numpy, Pillow; CUDA when there is one)")
    t.add_argument("--pack", type=Path, required=True)
    t.add_argument("--seeds", type=int, nargs="+", required=True)
    t.add_argument("--fp32-epochs", type=int, required=True)
    t.add_argument("--aligned-epochs", type=int, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--genome", type=Path, help="a genome's JSON file or a bundle manifest (default: the pack's)")
    t.add_argument("--budget-s", type=float,
                   help="refuse, after timing a few steps, trainings projected to take longer than this")
    f = sub.add_parser("finish", help="export and score the trained networks on the validation split, here")
    f.add_argument("--pack", type=Path, required=True)
    f.add_argument("--trained", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--second-stage", action="store_true",
                   help="fit each network's own second stage (minutes each: hil over the training split)")
    f.add_argument("--only", default="*", help="a glob of the trained files' names to finish (default: all)")
    args = parser.parse_args(argv)
    if args.step == "pack":
        pack(args.config, args.genome, args.out)
    elif args.step == "train":
        if min(args.fp32_epochs, args.aligned_epochs) < 0:
            parser.error("--fp32-epochs and --aligned-epochs must be >= 0")
        if args.budget_s is not None and args.budget_s <= 0:
            parser.error("--budget-s must be > 0 seconds")
        try:
            train(args.pack, args.seeds, args.fp32_epochs, args.aligned_epochs, args.out, args.genome, args.budget_s)
        except ValueError as exc:  # a projected overrun (--budget-s): refused before training, as a usage error
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        finish(args.pack, args.trained, args.out, args.second_stage, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
