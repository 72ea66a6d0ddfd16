"""``python -m flightsim``: make a synthetic scene, or stream a scene's tiles to a runtime."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from runtime.config import check_number, load_defaults, positive_float, positive_int

if TYPE_CHECKING:
    from flightsim.streamer import Streamer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flightsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML overriding flightsim/defaults.toml (an unknown key is an error)")
    gen = sub.add_parser("generate", parents=[common], help="write a synthetic scene GeoTIFF and its truth")
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("--out", type=Path, required=True, help="output directory")
    gen.add_argument("--size", type=int, help="side in pixels (default from flightsim/defaults.toml)")
    gen.add_argument("--gsd", type=float, help="metres per pixel")
    gen.add_argument("--dtype", help="uint8 or uint16 counts")
    stream = sub.add_parser("stream", parents=[common], help="send a GeoTIFF's tiles to a runtime's tile socket")
    stream.add_argument("--scene", type=Path, required=True)
    stream.add_argument("--tiles", required=True, help="the runtime's tile endpoint, e.g. tcp://127.0.0.1:5550")
    stream.add_argument("--tile-size", type=positive_int, help="pixels (default from the config: [stream] tile_size)")
    stream.add_argument("--rate", type=positive_float, help="tiles per second (default: as fast as acknowledged)")
    stream.add_argument("--window", type=positive_int, help="tiles in flight without an ack (default from the config: "
                        "[stream] window)")
    stream.add_argument("--keys", type=Path, help="CURVE key directory (python -m runtime keys): when the runtime "
                        "protects its tile socket")
    stream.add_argument("--key-name", help="this sender's key pair in --keys (default ground)")
    args = parser.parse_args(argv)
    from flightsim.streamer import LinkError

    streamer = None
    try:
        cfg = load_defaults(Path(__file__).with_name("defaults.toml"), args.config)
        _check_tables_read(args.config, args.command)
        if args.command == "generate":
            from flightsim.synthetic import generate_scene, write_scene

            if args.out.exists() and not args.out.is_dir():
                raise ValueError(f"--out {args.out}: a file, not a folder")
            scene = generate_scene(args.seed, size=args.size, gsd_m=args.gsd, dtype=args.dtype, config=cfg["synthetic"])
            paths = write_scene(scene, args.out, config=cfg["synthetic"])
            print(f"{len(scene.vessels)} vessels; " + ", ".join(f"{k}: {v}" for k, v in paths.items()))
            return 0
        from flightsim.streamer import Streamer
        from flightsim.tiles import tile_scene
        from runtime.config import check_endpoint

        keys = None
        if args.key_name is not None and args.keys is None:  # else ignored: the stream went out unprotected
            raise ValueError("--key-name names a key pair in --keys: give --keys DIR too")
        if args.keys is not None:
            from runtime.security import ClientKeys

            keys = ClientKeys.from_dir(args.keys, args.key_name or "ground")
        # None: not given (0 is refused by positive_int, never replaced by the default); a --config
        # value is checked as the option is (a float or a bool there broke the tiler or was taken as 1)
        window = check_number("[stream] window", cfg["stream"]["window"], 1, integer=True) \
            if args.window is None else args.window
        tile_size = check_number("[stream] tile_size", cfg["stream"]["tile_size"], 1, integer=True) \
            if args.tile_size is None else args.tile_size
        check_endpoint("--tiles", args.tiles, "tcp://127.0.0.1:5550")
        streamer = Streamer(args.tiles, window=window, rate_hz=args.rate, keys=keys)
        log = streamer.stream(tile_scene(args.scene, tile_size), progress=True)
        accepted = sum(1 for a in log.acks.values() if a["status"] == "accepted")
        rejected = len(log.acks) - accepted + len(log.anonymous_acks)
        duplicates = log.duplicates
        print(f"sent {len(log.sent_at)}, accepted {accepted - len(duplicates)}, rejected {rejected}, "
              f"duplicates {len(duplicates)}")
        if duplicates:
            print(f"warning: {len(duplicates)} tiles were already processed by this runtime (same scene id, tile "
                  "id and pixels): they produce no new result", file=sys.stderr)
        if rejected:  # exit 1: not every tile was taken, and the reasons say what to change
            reasons = Counter(a.get("reason") for a in [*log.acks.values(), *log.anonymous_acks]
                              if a.get("status") != "accepted")
            print(f"warning: {rejected} tiles rejected by the runtime: "
                  + ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
                  + " (docs/protocol.md lists the reasons; the runtime's log and events give each one's detail)",
                  file=sys.stderr)
            return 1
        return 0
    except (ValueError, OSError) as exc:  # OSError: a file as --out, a key file zmq cannot read
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # a --size too large to hold: numpy names what it could not allocate
        print(f"error: out of memory: {exc}", file=sys.stderr)
        return 2
    except (LinkError, zmq.ZMQError) as exc:  # no runtime answering, or an endpoint ZeroMQ cannot use
        print(f"error: {args.tiles}: {exc}{_progress(streamer)}", file=sys.stderr)
        return 2


#: The tables of flightsim/defaults.toml each command reads from ``--config``; the others are read
#: from the shipped file by hil and the sources (a user's copy of them here would do nothing).
READS = {"generate": ("synthetic",), "stream": ("stream",)}


def _check_tables_read(config: Path | None, command: str) -> None:
    """Refuse a ``--config`` that sets tables ``command`` does not read (``[timing]``, ``[faults]``,
    ``[sources]`` were accepted and silently ignored)."""
    if config is None:
        return
    from runtime.config import tomllib

    with open(config, "rb") as f:
        ignored = sorted(set(tomllib.load(f)) - set(READS[command]))
    if ignored:
        raise ValueError(f"--config {config}: flightsim {command} reads only {[f'[{t}]' for t in READS[command]]} "
                         f"from it, not {[f'[{t}]' for t in ignored]}: those are the shipped defaults hil run and "
                         f"the sources read (hil run's --timing, --rate and --faults set a run's own)")


def _progress(streamer: Streamer | None) -> str:
    """What a stream that failed had done, for its error line: tiles sent and acknowledged (empty
    when the streamer was never made, e.g. an endpoint ZeroMQ refused)."""
    if streamer is None:
        return ""
    return f" (sent {len(streamer.log.sent_at)} tiles, {len(streamer.log.acks)} acknowledged)"


if __name__ == "__main__":
    sys.exit(main())
