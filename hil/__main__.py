"""``python -m hil run``: a flight model on a scene source through a runtime, scored, with a report."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any

import zmq

from runtime.config import check_endpoint


def _floats(text: str, n: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated numbers, got {text!r}") from None
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what} must be {n} comma-separated numbers, got {text!r}")
    return values


def _band_numbers(text: str) -> list[int]:
    """``--bands``: 1-based band numbers, e.g. ``1,1,1``; a 1.7 or a nan is refused, not truncated."""
    try:
        bands = [int(v) for v in text.split(",")]
    except ValueError:
        bands = []
    if not bands or min(bands) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated band numbers >= 1, e.g. 1,1,1; got {text!r}")
    return bands


ROLES = ("train", "val", "test")


def split_source(spec: str):  # -> flightsim.sources.Subset
    """``SPLIT_JSON:ROLE`` as the samples of that role, from the data set the split file names.

    Raises:
        ValueError: naming the split file: on a missing file, an unknown role, a file not of the
            shape ``python -m search run`` writes (no ``source``, no list of sample indices for the
            role, a ``names`` that is not an object), a role with no samples, indices outside the
            data set, or a data set whose sample names no longer match the split (the split would
            then pick other samples than those it set aside).
    """
    from flightsim.sources import Subset, open_source

    path, sep, role = spec.rpartition(":")
    if not sep or role not in ROLES:
        raise ValueError(f"--split {spec!r}: give SPLIT_JSON:ROLE with ROLE one of {list(ROLES)}")
    if not Path(path).is_file():
        raise ValueError(f"--split {spec!r}: no such file {path!r}")
    split = _read_split(path, role)
    source = open_source(split["source"])
    indices: list[int] = split[role]
    outside = [i for i in indices if not 0 <= i < len(source)]
    if outside:  # before the names are compared: source[i] of such an index is an IndexError
        raise ValueError(f"--split {spec!r}: {role} sample indices {outside[:5]} are outside 0..{len(source) - 1} "
                         f"of {split['source']!r} ({len(source)} samples)")
    names = split.get("names", {})
    moved = [i for i in indices if str(i) in names and source[i].name != names[str(i)]]
    if moved:
        raise ValueError(f"--split {spec!r}: the data set changed since the split was made "
                         f"(sample {moved[0]} is now {source[moved[0]].name!r}, was {names[str(moved[0])]!r})")
    return Subset(source, indices, role=role)


def _read_split(path: str, role: str) -> dict[str, Any]:
    """The split file at ``path``, checked to have the shape ``python -m search run`` writes:
    ``source`` a source spec, ``role`` a non-empty list of sample indices, ``names`` (optional) an
    object of index -> sample name. A hand-edited or truncated file is then a ValueError naming the
    file and what is wrong, not a KeyError or TypeError from deep inside the loading."""
    import json

    try:
        split = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--split {path}: not a readable split file: {exc}") from None
    if not isinstance(split, dict):
        raise ValueError(f"--split {path}: a split file is a JSON object with 'source' and {list(ROLES)}, "
                         f"got a {type(split).__name__}")
    source = split.get("source")
    # one KIND:PATH, or the list of them a search over several sets writes
    if not (isinstance(source, str) or (isinstance(source, list) and source and all(isinstance(s, str) for s in source))):
        raise ValueError(f"--split {path}: no 'source' (the data set's KIND:PATH, or a list of them) in the split file")
    if role not in split:
        present = [r for r in ROLES if r in split]
        raise ValueError(f"--split {path}: no {role!r} samples in the split file; roles present: {present}")
    indices = split[role]
    if not isinstance(indices, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise ValueError(f"--split {path}: {role!r} must be a list of integer sample indices, got {indices!r:.80}")
    if not indices:
        raise ValueError(f"--split {path}: the {role!r} role has no samples; nothing to run")
    if not isinstance(split.get("names", {}), dict):
        raise ValueError(f"--split {path}: 'names' must be an object of sample index -> sample name")
    return split


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop the run as Ctrl-C does, so that its clean-up runs."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from flightsim.sources import SOURCES, parse_spec
    from flightsim.timing import MODES
    from hil.score import MATCH_SHAPES
    from hil.settings import DEFAULTS, Settings
    from runtime.config import positive_float, positive_int

    cfg = DEFAULTS.run  # the shipped defaults, for the help texts
    parser = argparse.ArgumentParser(prog="python -m hil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="stream a scene source through a runtime and score what comes back",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="scene sources (--scene KIND:PATH; a bare path is a GeoTIFF):\n"
                                + "\n".join(f"  {k:15s} {v}" for k, v in SOURCES.items()))
    run.add_argument("--config", type=Path, help="TOML overriding hil/defaults.toml (an unknown key is an error)")
    run.add_argument("--scene", help="'synthetic[:opts]', a GeoTIFF path, or KIND:PATH (see below)")
    run.add_argument("--split", metavar="SPLIT_JSON:ROLE",
                     help="the samples a search set aside: OUT/data/split.json of `python -m search run` and "
                          "a role, train, val or test (the held-out test split); the data set is the one "
                          "the split names, so --scene is not needed")
    run.add_argument("--seed", type=int, help=f"seed of a synthetic scene (default {cfg.synthetic_seed})")
    run.add_argument("--truth", type=Path, help="mask GeoTIFF or vessel GeoJSON for a GeoTIFF scene")
    run.add_argument("--limit", type=int, help="at most this many images of a data set")
    run.add_argument("--gsd", type=float, help="metres per pixel: for images without a georeference, or in place of an image's own pixel size (its origin and CRS kept)")
    run.add_argument("--origin", type=lambda t: _floats(t, 2, "--origin"), help="X,Y map coordinates of the upper-left corner (in place of an image's own)")
    run.add_argument("--crs", help="CRS of --gsd/--origin (EPSG:... or WKT); without it an image keeps its own CRS, and one without a CRS given --gsd goes on a local metric plane")
    run.add_argument("--bands", type=_band_numbers,
                     help="1-based source bands feeding the model's bands, e.g. 1,1,1 (default: by count, name, or repeat)")
    run.add_argument("--overlap", type=int, help=f"pixels shared by neighbouring tiles (default {cfg.overlap_px})")
    run.add_argument("--model", type=Path, required=True, help="flight model bundle directory")
    run.add_argument("--device", help=f"device of the runtime started here (default {cfg.device})")
    run.add_argument("--profile", help="the twin's target profile for a runtime started here, e.g. a hypothesis "
                     "profile (default: the model's numerics.profile, else the twin's; runtime/profiles.toml)")
    run.add_argument("--runtime", help="control endpoint of a running runtime instead of starting one")
    run.add_argument("--ground-ack", action=argparse.BooleanOptionalAction, default=None,
                     help="whether the runtime started here counts a result delivered only once the rig "
                     "acknowledges it (default: the runtime's [delivery] ground_ack, on)")
    run.add_argument("--runtime-config", type=Path, help="TOML overriding runtime/defaults.toml for the runtime "
                     "started here (`runtime serve --config`), e.g. [vectorize] batch = 1")
    run.add_argument("--signing-key", type=Path, help="Ed25519 private key: sign the uplinked model with it "
                     "(for a runtime started with --uplink-public-key)")
    run.add_argument("--keys", type=Path, help="CURVE key directory (python -m runtime keys): for a --runtime that "
                     "protects its sockets with CURVE (those its status names are opened with this sender's pair)")
    run.add_argument("--key-name", help="this rig's key pair in --keys (default ground)")
    run.add_argument("--report", type=Path, help=f"output directory (default {cfg.report_dir})")
    run.add_argument("--timing", choices=MODES, help=f"asap: as fast as acknowledged; rate: --rate tiles/s in --burst; "
                     f"pushbroom: each tile row when its last line is read at --line-rate (default {cfg.timing})")
    run.add_argument("--rate", type=positive_float, help="tiles per second (implies --timing rate)")
    run.add_argument("--burst", type=positive_int, help="tiles sent together at --rate")
    run.add_argument("--line-rate", type=positive_float, help="lines per second of the push-broom (default: 7 km/s / gsd)")
    run.add_argument("--window", type=positive_int, help=f"tiles in flight (default {cfg.window})")
    run.add_argument("--faults", help="fault spec, e.g. drop=0.05,duplicate=0.02,corrupt=0.02,truncate=0.01,"
                                      "bad_checksum=0.01,reorder=0.05,restart=1@40,seed=3")
    run.add_argument("--fault-seed", type=int, help="seed of the fault draws (overrides seed= in --faults)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--modality", choices=("optical", "sar"), help="what the scene is, where its format does not say")
    run.add_argument("--land-masks", metavar="DIR|gshhg|osm",
                     help="sea/land masks <sample>.png (0 = land, as SSDD's sealand/), or a coastline data set "
                          "for georeferenced scenes (roaring-landmask: pip install '.[coastline]'): detections "
                          "on land are dropped on the ground before scoring")
    run.add_argument("--match-shape", choices=MATCH_SHAPES,
                     help="what a detection and a true vessel are matched as: their outlines, or the axis-aligned "
                          "boxes around both, for truth annotated with boxes only (default: [score] match_shape, "
                          f"{DEFAULTS.score.match_shape})")
    run.add_argument("--strict-fit", action="store_true",
                     help="refuse a scene the model was not trained for (modality, ground sample distance, count type) "
                          "instead of warning")
    args = parser.parse_args(argv)

    from flightsim.faults import FaultSpec
    from flightsim.sources import Georef
    from flightsim.timing import Timing
    from hil.rig import run as run_rig

    try:
        config = Settings.load(args.config)
        if args.match_shape is not None:
            config = dataclasses.replace(config, score=dataclasses.replace(config.score, match_shape=args.match_shape))
        cfg = config.run
        if args.report is not None and args.report.exists() and not args.report.is_dir():
            raise ValueError(f"--report {args.report}: a file, not a folder")
        if (args.scene is None) == (args.split is None):
            raise ValueError("give exactly one of --scene and --split")
        if args.split:
            # The split file names the data set, its truth and its samples; these would be ignored.
            ignored = [opt for opt, value in (("--truth", args.truth), ("--limit", args.limit), ("--gsd", args.gsd),
                                              ("--origin", args.origin), ("--crs", args.crs)) if value is not None]
            if ignored:
                raise ValueError(f"{', '.join(ignored)} cannot be given with --split: the split file names the "
                                 "data set, its truth and its samples; use --scene KIND:PATH for these options")
        if args.runtime:
            check_endpoint("--runtime", args.runtime, "tcp://127.0.0.1:5552")
            # These shape a runtime started here; a running one keeps its own (its report says which).
            ignored = [opt for opt, value in (("--device", args.device), ("--profile", args.profile),
                                              ("--runtime-config", args.runtime_config),
                                              ("--ground-ack/--no-ground-ack", args.ground_ack)) if value is not None]
            if ignored:
                raise ValueError(f"{', '.join(ignored)} cannot be given with --runtime: they configure a runtime "
                                 "that hil starts; the running runtime keeps its own (set them where it was started)")
        if args.seed is not None:  # else ignored: a GeoTIFF has no seed, and synthetic:seed=N wins
            kind, rest = parse_spec(args.scene) if args.scene else ("split", "")
            if kind != "synthetic":
                raise ValueError("--seed is for --scene synthetic; this scene has no seed")
            if {k.partition("=")[0].strip() for k in rest.split(",")} & {"seed", "seeds"}:
                raise ValueError(f"give the seed once: --seed {args.seed} or {args.scene!r}, not both")
        if args.key_name is not None and args.keys is None:  # else ignored: the run went out unprotected
            raise ValueError("--key-name names a key pair in --keys: give --keys DIR too")
        if args.keys is not None and not args.runtime:
            raise ValueError("--keys is for a --runtime already running under CURVE: the runtime hil starts has none")
        keys = None
        if args.keys is not None:
            from runtime.security import ClientKeys

            keys = ClientKeys.from_dir(args.keys, args.key_name or "ground")
        scene = split_source(args.split) if args.split else args.scene
        if args.timing and args.timing != "rate" and args.rate is not None:
            raise ValueError(f"--rate is for --timing rate, not --timing {args.timing}")
        rate = args.rate if args.rate is not None else (cfg.rate_hz or None)  # [run] rate_hz 0: none
        if args.timing == "rate" and rate is None:
            raise ValueError("--timing rate needs --rate TILES_PER_S (or [run] rate_hz in --config)")
        # as rig.run reads [run]: a rate (given, or the config's) means rate timing
        mode = args.timing or ("rate" if rate else "pushbroom" if args.line_rate else cfg.timing)
        if args.burst is not None and mode != "rate":  # as --rate: a burst is a rate mode's, else ignored
            raise ValueError(f"--burst is for --timing rate (with --rate), not --timing {mode}")
        if args.line_rate is not None and mode != "pushbroom":  # else ignored, yet written in the report's timing
            raise ValueError(f"--line-rate is for --timing pushbroom, not --timing {mode}")
        kwargs = {} if args.burst is None else {"burst": args.burst}  # 0 is refused by positive_int
        timing = Timing(mode, line_rate_hz=args.line_rate, rate_hz=rate if mode == "rate" else args.rate, **kwargs)
        if args.fault_seed is not None and not args.faults:  # else ignored: no fault is drawn
            raise ValueError("--fault-seed is the seed of --faults draws; give --faults too (e.g. drop=0.05)")
        faults = FaultSpec.parse(args.faults, seed=args.fault_seed) if args.faults else None
        georef = Georef(args.gsd, args.origin, args.crs)
        result = run_rig(scene, args.model, args.report or cfg.report_dir, device=args.device, seed=args.seed,
                         truth=args.truth, runtime=args.runtime, window=args.window,
                         progress=not args.quiet, georef=georef, bands=args.bands, overlap=args.overlap,
                         timing=timing, faults=faults, limit=args.limit, modality=args.modality,
                         strict_fit=args.strict_fit, land_masks=args.land_masks, profile=args.profile,
                         signing_key=args.signing_key, keys=keys, ground_ack=args.ground_ack, config=config,
                         runtime_config=args.runtime_config)
    except (ValueError, RuntimeError, OSError) as exc:  # OSError: e.g. a file given as --report
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except zmq.ZMQError as exc:
        print(f"error: ZeroMQ: {exc} (--runtime {args.runtime})" if args.runtime else f"error: ZeroMQ: {exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (_terminated): a clear line, not a traceback
        print("error: interrupted: the run was stopped (and a runtime started here with it); no report written",
              file=sys.stderr)
        return 130
    r = result.report
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    scene = r["scene"]
    lines = [
        f"model {r['model']['name']} ({r['model']['sha256'][:12]}) on {r['device']} "
        f"[{r['numerics']['inference_precision']} host arithmetic, profile {r.get('profile')}]",
        f"scene: {scene.get('source')} {scene.get('path') or ''} ({len(r['per_scene'])} image(s), units {r['units']}); "
        f"bands: {scene.get('band_adaptation')}",
        f"tiles: sent {r['tiles_sent']}, processed {r['tiles_processed']}, rejected {r['tiles_rejected']}, "
        f"lost {r['tiles_lost']} (by the link {sum(r['tiles_lost_by_link'].values())}, unaccounted {r['tiles_unaccounted']})",
        f"mIoU {fmt(r['miou'])}, vessel IoU {fmt(r['vessel_iou'])} (of the reported outlines "
        f"{fmt(r.get('outline_vessel_iou'))}), precision {fmt(r['precision'])}, "
        f"recall {fmt(r['recall'])}, F1 {fmt(r['f1'])}",
        f"latency p50 {fmt(r['latency_ms']['p50'])} ms, p99 {fmt(r['latency_ms']['p99'])} ms; "
        f"throughput {fmt(r['throughput_tiles_per_s'])} tiles/s (measured on this host)"
        + (f"; Myriad X estimate {r['estimated_latency_ms']:.1f} ms/tile (cost model)" if r.get("estimated_latency_ms") else ""),
    ]
    if not any(s.get("pixel_counts") for s in r["per_scene"]):
        lines.append("no truth: nothing was scored (give --truth, a mask GeoTIFF or a GeoJSON of the vessels, "
                     "or a data set with its annotations)")
    if r.get("truth_on_nodata") or r.get("truth_on_land"):
        # the misses no detection could have been kept for: in the recall, as published, but said
        lines.append(f"true vessels centred on no data {r['truth_on_nodata']} ({r['truth_on_nodata_missed']} missed), "
                     f"on masked land {r['truth_on_land'] or 0} ({r['truth_on_land_missed'] or 0} missed): "
                     f"{fmt(r['misses_on_nodata_or_land_share'])} of the misses")
    land = r.get("land_masked")
    if land:
        lines.append(f"land masks {land['source']}: {land['samples_with_a_mask']} of {len(r['per_scene'])} image(s) "
                     f"masked, {land['detections_dropped']} detection(s) dropped")
        if not land["samples_with_a_mask"]:  # e.g. a coastline asked for images that have no place on the Earth
            lines.append(f"warning: --land-masks {land['source']} masked no image (a coastline needs georeferenced "
                         "images, not ones placed by --gsd or --crs without --origin; a folder needs "
                         "<sample stem>.png masks)")
    boxed = r.get("truth_boxes_only_samples")
    if boxed and r.get("match_shape") == "outline":
        lines.append(f"warning: the truth of {boxed} of {len(r['per_scene'])} image(s) is axis-aligned boxes only, "
                     "matched against the detections' outlines: a ship at an angle fills a fraction of its box and "
                     "misses at IoU 0.5 though found; --match-shape box compares boxes with boxes")
    for warning in r["model_fit"]["warnings"]:
        lines.append(f"warning: {warning}")
    for kind, f in (r.get("faults") or {}).items():
        if kind == "not_injected":
            lines += [f"warning: fault {what}: never injected" for what in f]
        elif kind != "spec":
            lines.append(f"fault {kind}: injected {f['injected']}, outcomes {f['outcomes']}")
    lines.append(f"outputs: {result.report_dir}/ (report.json, detections.geojson, overview.png)")
    print("\n".join(lines))
    return 0 if r["tiles_unaccounted"] == 0 else 1


if __name__ == "__main__":
    # SIGTERM (kill, a job scheduler) ends a run as Ctrl-C does, through rig.run's clean-up: by
    # default it ended this process at once and left the runtime started here running, orphaned.
    signal.signal(signal.SIGTERM, _terminated)
    sys.exit(main())
