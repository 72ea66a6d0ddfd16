"""Command line: ``python -m search train-baseline --out models/default [--epochs N] [--seed S] [--config FILE]``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search",
        description="Design and train vessel segmentation networks and export them as flight model bundles.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    base = sub.add_parser(
        "train-baseline",
        help="train the fixed baseline U-Net and write an FP16 IR bundle",
        description="Train the fixed baseline U-Net on synthetic scenes, export it as an FP16 OpenVINO IR, "
        "score the IR on validation scenes, and write a bundle (model.xml, model.bin, manifest.json).",
    )
    base.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    base.add_argument("--epochs", type=int, default=None, help="training epochs (default: search/defaults.toml)")
    base.add_argument("--seed", type=int, default=None, help="training seed (default: search/defaults.toml)")
    base.add_argument("--config", type=Path, default=None, help="TOML merged over search/defaults.toml")
    base.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
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
        ).bundle
        metrics = bundle.manifest["metrics"]
        print(
            f"wrote {args.out} (bundle {bundle.id[:12]}): val vessel IoU {metrics['val_vessel_iou']:.4f}, "
            f"mIoU {metrics['val_miou']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
