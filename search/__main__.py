"""Command line.

``python -m search train-baseline --out models/default [--epochs N] [--seed S] [--config FILE]``
``python -m search run --config configs/smoke.toml --out OUT [--workers N] [--ray-address ADDR]``
``python -m search ablate --config FILE --out OUT [--genome JSON_OR_FILE]``
``python -m search retype --model BUNDLE (--input-dtype uint8 | --config FILE) --out OUT``
``python -m search discriminate --model BUNDLE --split SPLIT.json --out OUT [--device DEV]``
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from runtime.discriminate import KINDS
    from search.config import CUT_BY

    parser = argparse.ArgumentParser(
        prog="python -m search",
        description="Design and train vessel segmentation networks and export them as flight model bundles.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    base = sub.add_parser(
        "train-baseline",
        help="train the fixed baseline U-Net and write an FP16 IR bundle",
        description="Train the fixed baseline U-Net (one fixed genome of the search's family) on the config's "
        "[data] source with the candidates' training loop (FP32), export it as an FP16 OpenVINO IR with their "
        "exporter, score the IR on the validation samples, and write a bundle.",
    )
    base.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    base.add_argument("--epochs", type=int, default=None, help="training epochs (default: search/defaults.toml)")
    base.add_argument("--seed", type=int, default=None, help="training seed (default: search/defaults.toml)")
    base.add_argument("--config", type=Path, default=None, help="TOML merged over search/defaults.toml")
    base.add_argument("--input-dtype", default=None, choices=["float32", "uint8", "uint16"],
                      help="the IR's input: float32 (normalised on the host) or counts normalised in the IR "
                      "(default: [export] input_dtype)")
    base.add_argument("--quiet", action="store_true", help="no progress output")

    run = sub.add_parser(
        "run",
        help="evolutionary search: train, align, export and score candidates through hil",
        description="Deployment-aligned evolutionary NAS. Candidates are trained in FP32, fine-tuned with the "
        "target profile's forward pass, exported as FP16 IR and scored through hil on the flight device "
        "(MYRIAD, else NPU, else the Myriad X twin). Rerun on the same --out to resume.",
    )
    run.add_argument("--out", type=Path, required=True, help="search directory (created, or resumed)")
    run.add_argument("--config", type=Path, default=None, help="TOML merged over search/defaults.toml")
    run.add_argument("--workers", type=int, default=None, help="candidates at once (default: [run] workers)")
    run.add_argument("--generations", type=int, default=None,
                     help="generations to run (default: [evolution] generations); a search may be resumed with "
                          "fewer (it stops there and ships that generation's best) or more")
    run.add_argument("--ray-address", default=None,
                     help="Ray cluster address ('auto', 'ray://host:10001'); needs the 'distributed' extra")
    run.add_argument("--quiet", action="store_true", help="no progress output")

    abl = sub.add_parser(
        "ablate",
        help="FP32 on host vs post-training FP16 on device vs deployment-aligned on device, one genome",
        description="Train one genome and report FP32 on the host, post-training FP16 on the device "
        "(twin here), and deployment-aligned on the device, the fraction of the gap recovered, and the "
        "gap broken down by cause (rounding, range, op semantics) with twin profiles that isolate each.",
    )
    abl.add_argument("--out", type=Path, required=True, help="directory for the bundles, hil reports, ablation.json")
    abl.add_argument("--config", type=Path, default=None, help="TOML merged over search/defaults.toml")
    abl.add_argument("--genome", default=None, help="genome as JSON, or a JSON file / bundle manifest holding one "
                     "(default: [ablate] of the config)")
    abl.add_argument("--quiet", action="store_true", help="no progress output")

    ret = sub.add_parser(
        "retype",
        help="copy a bundle so that its IR takes uint8/uint16 counts and normalises them itself",
        description="Same weights, new input: Parameter(counts) -> Convert -> Subtract(mean) -> Multiply(1/std) "
        "in the IR (opset1), manifest input.dtype set and normalization.where = 'ir'. The source's metrics "
        "are kept and the manifest says under derived_from what changed.",
    )
    ret.add_argument("--model", type=Path, required=True, help="bundle with float32 input, normalised on the host")
    ret.add_argument("--config", type=Path, default=None,
                     help="TOML merged over search/defaults.toml, read for its [export] input_dtype only "
                     "(so not with --input-dtype)")
    ret.add_argument("--input-dtype", choices=["uint8", "uint16"],
                     help="counts the new IR takes (default from --config: [export] input_dtype)")
    ret.add_argument("--out", type=Path, required=True, help="bundle directory to write")

    dis = sub.add_parser(
        "discriminate",
        help="fit the runtime's second stage (keep or drop each detection) on a split's train and val samples",
        description="Run the bundle through hil on the split's training and validation samples with its cuts "
        "opened, describe each detection by its scores, size, shape and contrast against the clutter around it, "
        "fit a model (--kind) on the training detections, choose its cut on the validation ones (object F1), and write "
        "the bundle with output.discriminator. The test split is never read.",
    )
    dis.add_argument("--model", type=Path, required=True, help="bundle to add the discriminator to")
    dis.add_argument("--split", type=Path, required=True, help="the search's OUT/data/split.json")
    dis.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    dis.add_argument("--device", default="myriadx-emu", help="hil device for the candidates (default: the twin)")
    dis.add_argument("--kind", choices=KINDS,
                     help="the model: a logistic score, or boosted decision trees (default: [export] "
                     "discriminator_kind of search/defaults.toml, logistic)")
    dis.add_argument("--cut-by", choices=CUT_BY,
                     help="what the cut is chosen for on validation: object F1, or F1 plus the kept outlines' "
                     "pooled vessel IoU (default: [export] discriminator_cut_by of search/defaults.toml, f1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a mistake in its arguments or files (a missing or invalid config, an ``--out``
    that is a file, a bad ``--genome``, a path that is not a bundle) prints ``error: ...`` on stderr
    and returns 2, as ``hil`` and ``runtime`` do, rather than a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} is an existing file, not a directory")
        return _command(args, argv)
    except (ValueError, OSError) as exc:  # includes BundleError, JSON errors, a missing --config
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace, argv: list[str]) -> int:
    if args.command == "train-baseline":
        # Imported here so that --help does not pay for torch and OpenVINO.
        from search.baseline import train_baseline

        bundle = train_baseline(
            args.out,
            epochs=args.epochs,
            seed=args.seed,
            config_path=args.config,
            progress=not args.quiet,
            command=shlex.join(["python", "-m", "search", *argv]),
            input_dtype=args.input_dtype,
        ).bundle
        metrics = bundle.manifest["metrics"]
        print(
            f"wrote {args.out} (bundle {bundle.id[:12]}): val vessel IoU {metrics['val_vessel_iou']:.4f}, "
            f"mIoU {metrics['val_miou']:.4f}"
        )
    elif args.command == "run":
        from search.config import load_config
        from search.evolution import run_search

        cfg = load_config(args.config)
        if args.workers is not None:
            cfg["run"]["workers"] = args.workers
        if args.ray_address is not None:
            cfg["run"]["ray_address"] = args.ray_address
        if args.generations is not None:
            if args.generations < 1:
                raise ValueError(f"--generations must be at least 1, got {args.generations}")
            cfg["evolution"]["generations"] = args.generations
        result = run_search(cfg, args.out, progress=not args.quiet)
        best = result.best
        if best is None:
            limit = float(cfg["fitness"]["latency_limit_ms"])
            if limit > 0 and any(r.get("fitness") is not None for r in result.records.values()):
                print(f"no candidate is within [fitness] latency_limit_ms = {limit}: no flight model; "
                      f"see {args.out}/report/candidates.md")
            else:
                print(f"no candidate could be scored; see {args.out}/report/candidates.md")
            return 1
        from search.fitness import latency_used

        dev = best["device_metrics"]
        # the latency the fitness used: the Myriad X estimate, or the measured p50 on a device the cost
        # model does not price (a CPU or an NPU has no estimate: formatting None was a TypeError)
        latency, kind = latency_used(best, cfg["fitness"]["latency"])
        print(f"best {best['name']} ({best['parameters']} parameters): fitness {best['fitness']:.4f}, "
              f"on-device ({dev['device']}) val mIoU {dev['miou']:.4f}, vessel IoU {dev['vessel_iou']:.4f}, "
              f"latency {latency:.1f} ms per tile ({kind}); wrote {args.out}/flight_model, "
              f"{args.out}/report; trained {result.trained} candidates in this run")
    elif args.command == "ablate":
        from search.ablate import format_ablation, run_ablation
        from search.config import load_config

        cfg = load_config(args.config)
        result = run_ablation(cfg, args.out, genome_arg=args.genome, progress=not args.quiet,
                              command=shlex.join(["python", "-m", "search", *argv]))
        print(format_ablation(result))
    elif args.command == "retype":
        from search.config import load_config
        from search.input_types import retype_bundle

        if args.input_dtype is not None and args.config is not None:
            # the config's only use here is the input type: given both, one of them was ignored
            raise ValueError(f"--config {args.config} is read only for its [export] input_dtype, which "
                             f"--input-dtype {args.input_dtype} gives: give one of them")
        dtype = args.input_dtype or load_config(args.config)["export"]["input_dtype"]
        if dtype == "float32":  # the shipped default: the config says nothing to retype to
            raise ValueError("give --input-dtype uint8 or uint16 (the config's [export] input_dtype is float32)")
        bundle = retype_bundle(args.model, args.out, dtype, command=shlex.join(["python", "-m", "search", *argv]))
        print(f"wrote {args.out} (bundle {bundle.id[:12]}): input {dtype}, normalised in the IR")
    elif args.command == "discriminate":
        import tempfile

        from search.config import load_config
        from search.discriminate import discriminate

        defaults = load_config()["export"]
        kind = args.kind or defaults["discriminator_kind"]
        cut_by = args.cut_by or defaults["discriminator_cut_by"]
        with tempfile.TemporaryDirectory(prefix="discriminate-") as work:
            record = discriminate(args.model, args.split, args.out, Path(work), device=args.device, kind=kind,
                                  cut_by=cut_by)
        print(f"wrote {args.out}: validation F1 {record['val_f1']:.3f}, outline IoU {record['val_outline_iou']:.3f} "
              f"at cut {record['cut']} chosen by {cut_by} (the cuts it replaces: F1 "
              f"{record['val_f1_cuts_replaced']:.3f}, outline IoU {record['val_outline_iou_cuts_replaced']:.3f}), "
              f"{record['train_candidates']} training candidates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
