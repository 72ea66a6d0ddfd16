"""``python -m runtime``: serve the payload, or run its processing on one file."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from runtime import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="bind the sockets and serve tiles until shutdown")
    serve.add_argument("--config", type=Path, help="TOML overriding runtime/defaults.toml")
    serve.add_argument("--model", type=Path, help="bundle directory to serve from the start")
    serve.add_argument("--device", help="OpenVINO device (default from the config: CPU)")
    for name in ("tiles", "results", "control", "telemetry"):
        serve.add_argument(f"--{name}", help=f"ZeroMQ endpoint of the {name} socket")
    serve.add_argument("--store", help="directory of installed bundles (current, previous)")

    infer = sub.add_parser("infer", help="segment one .npy or GeoTIFF and write a GeoJSON")
    infer.add_argument("--model", type=Path, required=True)
    infer.add_argument("--input", type=Path, required=True)
    infer.add_argument("--output", type=Path, required=True)
    infer.add_argument("--device", help="OpenVINO device (default from the config: CPU)")
    infer.add_argument("--config", type=Path)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = config.defaults(args.config)
    try:
        if args.command == "serve":
            return _serve(args, cfg)
        return _infer(args, cfg)
    except ValueError as exc:  # includes BundleError: a clear message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.server import Runtime, Settings

    settings = Settings.from_config(
        cfg, device=args.device, store=args.store, tiles=args.tiles, results=args.results,
        control=args.control, telemetry=args.telemetry,
    )
    runtime = Runtime(settings, model=args.model)
    signal.signal(signal.SIGTERM, lambda *_: runtime.stop())
    signal.signal(signal.SIGINT, lambda *_: runtime.stop())
    # One JSON line on stdout says where the sockets are: a parent process waits for it.
    print(json.dumps({"event": "ready", "endpoints": runtime.endpoints, "device": settings.device}), flush=True)
    runtime.serve()
    return 0


def _infer(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.offline import infer_file

    collection = infer_file(
        args.model, args.input, args.device or cfg["inference"]["device"], cfg["vectorize"],
        cfg["inference"]["cpu_precision"],
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(collection, indent=1))
    print(f"{len(collection['features'])} vessels -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
