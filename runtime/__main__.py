"""``python -m runtime``: serve the payload, command a serving one, or run its processing on one file."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from runtime import config
from runtime.settings import CPU_PRECISIONS
from runtime.supervisor import StartFailure, handlers_restored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    # Every command reads its defaults from runtime/defaults.toml; --config overrides any subset.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path,
                        help="TOML overriding runtime/defaults.toml (an unknown key is an error)")

    # No abbreviations: the supervisor reads serve's options (--model, --store) to restart it, and an
    # abbreviated --mod or --stor it did not recognise reinstalled the model or ignored the store.
    serve = sub.add_parser("serve", parents=[common], allow_abbrev=False,
                           help="bind the sockets and serve tiles until shutdown")
    serve.add_argument("--model", type=Path, help="bundle directory to serve from the start")
    serve.add_argument("--device", help="OpenVINO device, myriadx-emu or flight (default from the config: flight)")
    serve.add_argument("--profile", help="the twin's target profile (default: the model's numerics.profile, "
                       "else the twin's own; runtime/profiles.toml)")
    for name in ("tiles", "results", "control", "telemetry", "acks"):
        serve.add_argument(f"--{name}", help=f"ZeroMQ endpoint of the {name} socket")
    serve.add_argument("--ground-ack", action=argparse.BooleanOptionalAction, default=None,
                       help="results count as delivered only once the ground acknowledges them on the acks "
                       "socket (default from the config: on; [delivery] ground_ack)")
    serve.add_argument("--strict-fit", action=argparse.BooleanOptionalAction, default=None,
                       help="reject the tiles of a scene the model was not trained for (modality, metres per "
                       "pixel, count type) instead of serving them with a warning event (default from the config: off)")
    serve.add_argument("--store", help="directory of installed bundles (current, previous)")
    serve.add_argument("--watchdog-file", help="touched each health period while every stage answers "
                       "(for a supervisor: python -m runtime supervise)")
    serve.add_argument("--curve-server-secret", help="server secret key: CURVE on the control socket")
    serve.add_argument("--curve-authorized", help="directory of the public keys allowed to command")
    serve.add_argument("--curve-channels", help="sockets under CURVE, comma-separated (default from the config: "
                       "control; add tiles,results,telemetry to admit only authorised senders and readers)")
    serve.add_argument("--uplink-public-key", help="Ed25519 public key: uplinked models must be signed by its "
                       "private key (python -m runtime sign)")

    sup = sub.add_parser("supervise", parents=[common],
                         help="run 'serve' under a parent that restarts it when its watchdog starves")
    sup.add_argument("--starve-s", type=float, help="restart after the watchdog is unfed this long "
                     "(default from the config: [supervise] starve_s)")
    sup.add_argument("--max-restarts", type=int, default=None, help="give up after this many (default: never)")
    sup.add_argument("serve_args", nargs=argparse.REMAINDER, help="-- then the options of 'serve'")

    keys = sub.add_parser("keys", parents=[common], help="make CURVE key pairs for the control channel")
    keys.add_argument("--out", type=Path, required=True)
    keys.add_argument("--client", action="append", default=None, help="client name (repeatable; default: ground)")
    keys.add_argument("--signing", action="store_true", help="also an Ed25519 pair that signs uplinked models "
                      "(uplink.signing.pem stays on the ground; the payload gets uplink.verify.pem)")
    keys.add_argument("--signing-only", action="store_true", help="only the Ed25519 pair, e.g. beside CURVE keys "
                      "made before (existing key files are never overwritten)")

    sgn = sub.add_parser("sign", parents=[common], help="sign a bundle for a payload that takes only signed models")
    sgn.add_argument("--model", type=Path, required=True, help="bundle directory (signature.json is written into it)")
    sgn.add_argument("--key", type=Path, required=True, help="Ed25519 private key (python -m runtime keys --signing)")

    infer = sub.add_parser("infer", parents=[common], help="segment one image (.npy, or any raster GDAL reads: "
                           "GeoTIFF, PNG, JPEG, ...) and write a GeoJSON")
    infer.add_argument("--model", type=Path, required=True)
    infer.add_argument("--input", type=Path, required=True)
    infer.add_argument("--output", type=Path, required=True)
    infer.add_argument("--device", help="OpenVINO device, myriadx-emu or flight (default from the config: flight)")

    ctl = sub.add_parser("control", parents=[common],
                         help="command a serving runtime over its control socket and print its JSON reply",
                         description="Send one command to a runtime's control socket (python -m runtime serve) and "
                         "print the reply as JSON; the exit status is 1 when the runtime refused it or did not "
                         "answer, 2 for a mistake in the arguments.")
    ctl.add_argument("--endpoint", help="the runtime's control socket (default from the config: [endpoints] control)")
    ctl.add_argument("--keys", type=Path, help="CURVE key directory (python -m runtime keys): for a runtime that "
                     "protects its control socket with CURVE")
    ctl.add_argument("--key-name", help="this client's key pair in --keys (default ground)")
    ctl.add_argument("--timeout-s", type=config.positive_float,
                     help="how long the reply is waited for (default: 30 s; a load-model: [health] load_timeout_s "
                     "of the config, at least 30 s)")
    ctl_sub = ctl.add_subparsers(dest="control_command", required=True, metavar="COMMAND")
    ctl_sub.add_parser("status", help="the runtime's state, model, device, counters and health")
    load = ctl_sub.add_parser("load-model", help="upload a bundle; the runtime verifies, compiles and test-runs it")
    load.add_argument("model", type=Path, help="bundle directory (its signature.json goes along when there is one)")
    ctl_sub.add_parser("shutdown", help="finish the tiles accepted, send their results, then exit")

    devices = sub.add_parser("devices", parents=[common], help="list the devices a runtime here can serve on")
    devices.add_argument("--json", action="store_true")

    bench = sub.add_parser("benchmark", parents=[common],
                           help="host latency/throughput of a bundle, and the Myriad X estimate")
    bench.add_argument("--model", type=Path, required=True)
    bench.add_argument("--device", help="device name, or 'flight' (default from the config: [inference] device)")
    bench.add_argument("--seconds", type=config.positive_float,
                       help="per measurement, > 0; at least one inference is timed (default from the config: "
                       "[benchmark] seconds)")
    bench.add_argument("--json", action="store_true", help="print JSON only")

    check = sub.add_parser("check", parents=[common], help="what a target cannot run, or runs differently, in a bundle")
    check.add_argument("--model", type=Path, required=True)
    check.add_argument("--target", default="MYRIAD",
                       help="MYRIAD, a MYRIAD device as `devices` lists it, or myriadx-emu (the twin, checked under "
                            "MYRIAD's rules, as the runtime checks a model it opens there)")
    check.add_argument("--json", action="store_true")

    prb = sub.add_parser("probe", parents=[common],
                         help="measure how a device computes and write its profile (profiles.toml schema)")
    prb.add_argument("--device", required=True, help="CPU, MYRIAD, NPU..., or myriadx-emu (the twin)")
    prb.add_argument("--profile", help="the twin's profile to probe (default: the twin's own)")
    prb.add_argument("--cpu-precision", choices=CPU_PRECISIONS,
                     help="what the CPU plugin is told to compute in (default: [inference] cpu_precision); "
                          "bf16 and f16 measure the CPU's own low-precision units where it has them")
    prb.add_argument("--out", type=Path, help="write the measured profile here (TOML)")
    prb.add_argument("--name", help="the profile's name in --out (default: measured-DEVICE)")
    prb.add_argument("--json", action="store_true", help="print the whole result as JSON")

    comp = sub.add_parser("compile", parents=[common],
                          help="compile a bundle on the ground for one target and add the blob to it")
    comp.add_argument("--model", type=Path, required=True, help="bundle directory (the blob is added to it)")
    comp.add_argument("--target", required=True, help="device family: CPU, MYRIAD, NPU, GPU")
    comp.add_argument("--device", help="instance to compile on, e.g. MYRIAD.1.2-ma2480 (default: the target)")
    comp.add_argument("--out", type=Path, help="write the bundle with its blob here instead (default: --model)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = config.defaults(getattr(args, "config", None))  # an unknown key is a clear error too
        commands = {"serve": _serve, "infer": _infer, "devices": _devices, "benchmark": _benchmark, "control": _control,
                    "check": _check, "keys": _keys, "compile": _compile, "probe": _probe, "sign": _sign,
                    "supervise": _supervise}
        return commands[args.command](args, cfg)
    # A clear message, not a traceback: ValueError includes BundleError; OSError a path of the wrong
    # kind (a folder for --output, a file for --out) and a file rasterio cannot read; StartFailure a
    # supervised runtime that never got ready (its own error printed above). Anything else is a bug
    # and keeps its traceback.
    except (ValueError, OSError, StartFailure) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # numpy names the size it could not allocate
        print(f"error: out of memory: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.server import Runtime, Settings
    from runtime.supervisor import die_with_parent

    die_with_parent()  # under `supervise`: SIGTERM when the supervisor dies, however it dies

    if args.profile:
        from runtime.profiles import get_profile

        get_profile(args.profile)  # an unknown name is a clear error before anything is bound
    settings = Settings.from_config(
        cfg, device=args.device, profile=args.profile, store=args.store, tiles=args.tiles, results=args.results,
        control=args.control, telemetry=args.telemetry, acks=args.acks, ground_ack=args.ground_ack,
        strict_fit=args.strict_fit,
        curve_server_secret=args.curve_server_secret,
        curve_authorized=args.curve_authorized,
        curve_channels=tuple(args.curve_channels.split(",")) if args.curve_channels else None,
        uplink_public_key=args.uplink_public_key, watchdog_file=args.watchdog_file,
    )
    if args.curve_channels and not (settings.curve_server_secret or settings.curve_authorized):
        # else ignored: the operator took the sockets named for protected while all of them were open
        raise ValueError(f"--curve-channels {args.curve_channels}: CURVE needs --curve-server-secret and "
                         "--curve-authorized (or [security] in --config)")
    # Ctrl-C during the start (which may compile for minutes) ends it cleanly, with no traceback: the
    # handler is installed first. SIGTERM keeps its default action until the start is done: a start
    # hung in native code (a device open) never runs a Python handler, and a supervisor's SIGTERM
    # must end it at once, as it always did, rather than wait for its SIGKILL.
    stop_asked: list[bool] = []
    runtime: Runtime | None = None

    def _stop(*_: object) -> None:
        stop_asked.append(True)
        if runtime is not None:
            runtime.stop()

    with handlers_restored(signal.SIGINT, signal.SIGTERM):  # called in-process, the caller's come back
        signal.signal(signal.SIGINT, _stop)
        runtime = Runtime(settings, model=args.model)
        signal.signal(signal.SIGTERM, _stop)
        if stop_asked:  # told to stop while starting: no ready line, nothing served
            runtime.close()
            return 0
        # One JSON line on stdout says where the sockets are: a parent process waits for it.
        print(json.dumps({"event": "ready", "endpoints": runtime.endpoints, "device": runtime.device_in_use}), flush=True)
        runtime.serve()
        return 0


def _supervise(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.supervisor import main as supervise

    serve_args = args.serve_args[1:] if args.serve_args[:1] == ["--"] else args.serve_args
    if args.config is not None and not any(a == "--config" or a.startswith("--config=") for a in serve_args):
        # The runtime it starts reads the same file: else it served on the defaults (other endpoints,
        # limits, ground_ack), the supervisor alone reading the file's [supervise] table.
        serve_args = ["--config", str(args.config), *serve_args]
    return supervise(serve_args, cfg["supervise"], args.starve_s, args.max_restarts)


def _sign(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.signing import sign_bundle_dir

    print(f"wrote {sign_bundle_dir(args.model, args.key)}")
    return 0


def _probe(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.probe import probe, to_toml

    precision = args.cpu_precision or (cfg["inference"]["cpu_precision"] if args.device.startswith("CPU") else "f32")
    result = probe(args.device, args.profile, precision)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(to_toml(result, args.name))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    twin = f" (twin, profile {result['twin_profile']})" if result["twin_profile"] else ""
    twin += f" (told to compute in {result['cpu_precision']})" if result["cpu_precision"] else ""
    print(f"{result['device']}{twin}, OpenVINO {result['openvino']}:")
    for field, seen in result["numerics"].items():
        print(f"  {field:20s} {seen['value']}")
    semantics = result["interpolate_semantics"]
    as_written = semantics is None or semantics.get("honour_all")
    print(f"  {'interpolate':20s} " + ("every probed setting as written" if as_written
                                        else f"native nearest {semantics['native_nearest']}, native linear "
                                             f"{semantics['native_linear']}, others -> "
                                             f"{semantics.get('remap_nearest')} / {semantics.get('remap_linear')}")
          + (f"; modes {semantics['supported_modes']}" if semantics and semantics.get("supported_modes") else ""))
    print(f"  sigmoid max error {result['sigmoid']['max_abs_error']:.3g} "
          f"(exact value rounded: {result['sigmoid']['max_abs_error_of_exact_rounded']:.3g})")
    print("matches: " + (", ".join(result["matches"]) or "no known profile"))
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _compile(args: argparse.Namespace, cfg: dict) -> int:
    from dataclasses import replace

    from runtime.bundle import SIGNATURE_FILE, read_bundle, write_bundle_as_is, write_compiled
    from runtime.compiled import compile_bundle

    if args.out is not None and args.out.exists() and not args.out.is_dir():  # else a bare "[Errno 17] File exists"
        raise ValueError(f"--out {args.out}: a file, not a folder; give the folder to write the bundle in")
    # This target's own artefact is not read: a damaged or stale blob (its checksum or IR not matching)
    # made the bundle unreadable, and so the compile that replaces it refused to run.
    source = read_bundle(args.model, skip_compiled=(args.target,))
    bundle = compile_bundle(source, args.target, args.device, cfg["inference"]["cpu_precision"])
    out = args.out or args.model
    if args.out is not None:  # the bundle whole, over what the folder held (another model's blobs go)
        # The manifest is unchanged, so its signature still holds for it: it goes along.
        write_bundle_as_is(args.out, replace(bundle, signature=source.signature))
    else:  # in place: this target's artefact only, so that a compile of another target meanwhile stands
        write_compiled(out, bundle, [args.target])
    record = json.loads(bundle.compiled[args.target][0])
    print(f"{out}/compiled/{args.target}.blob: {len(bundle.compiled[args.target][1])} bytes, OpenVINO "
          f"{record['openvino']}, compiled on {record['compiled_on']} in {record['compile_seconds']} s")
    if (Path(out) / SIGNATURE_FILE).is_file():  # the signature covers the manifest, not this new blob
        print(f"{out} is signed, but its signature does not cover the new blob: a runtime compiles the signed "
              f"IR instead of importing it until you sign again (python -m runtime sign --model {out} --key ...)")
    return 0


def _infer(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.offline import infer_file
    from runtime.settings import Settings

    # The same checks as a serving runtime's: a bad [vectorize] value is refused here, not per tile, and
    # [inference] profile is the payload's (it was ignored: the file computed in other numerics).
    settings = Settings.from_config(cfg, device=args.device)
    if args.output.is_dir():  # found only after the whole scene was inferred, its vessels then lost
        raise ValueError(f"--output {args.output}: a folder; give the GeoJSON file to write, e.g. "
                         f"{args.output / 'vessels.geojson'}")
    if args.output.suffix.lower() not in (".geojson", ".json"):  # GeoJSON under a .tif name read as a broken raster
        raise ValueError(f"--output {args.output}: the vessels are written as GeoJSON; give a .geojson or .json "
                         f"file, e.g. {args.output.with_suffix('.geojson')}")
    collection = infer_file(
        args.model, args.input, settings.device, dict(settings.vectorize), settings.cpu_precision, settings.profile,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(collection, indent=1))
    for warning in collection["fit"]["warnings"]:
        print(f"warning: {args.input} does not suit the model: {warning}", file=sys.stderr)
    print(f"{len(collection['features'])} vessels -> {args.output}")
    return 0


def _control(args: argparse.Namespace, cfg: dict) -> int:
    """``control``: one command to a serving runtime, its reply printed as JSON (exit status 1 on an
    error reply or none), so that an operator need not write Python to reach the control socket."""
    from runtime.client import DEFAULT_TIMEOUT_S, control_command

    keys = None
    if args.key_name is not None and args.keys is None:  # else ignored: the command went out unprotected
        raise ValueError("--key-name names a key pair in --keys: give --keys DIR too")
    if args.keys is not None:
        from runtime.security import ClientKeys

        keys = ClientKeys.from_dir(args.keys, args.key_name or "ground")
    timeout_s = args.timeout_s
    if timeout_s is None and args.control_command == "load-model":  # the load time of this config's runtime
        timeout_s = max(DEFAULT_TIMEOUT_S, float(cfg["health"]["load_timeout_s"]))
    model = args.model if args.control_command == "load-model" else None
    status, reply = control_command(args.endpoint or cfg["endpoints"]["control"], args.control_command, model,
                                    keys, timeout_s)
    print(json.dumps(reply, indent=1))
    if status:
        print(f"error: {reply.get('error')}", file=sys.stderr)
    return status


def _keys(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.security import curve_key_files, make_keys, refuse_overwrite

    if args.signing_only and args.client:
        raise ValueError("--signing-only makes the Ed25519 pair alone; --client names CURVE pairs")
    signing = args.signing or args.signing_only
    if signing:
        from runtime.signing import make_signing_keys, signing_key_files
    # Every file checked before any is written: half a key set is worse than none.
    refuse_overwrite(([] if args.signing_only else curve_key_files(args.out, args.client or ["ground"]))
                     + (signing_key_files(args.out) if signing else []))
    if not args.signing_only:
        made = make_keys(args.out, args.client or ["ground"])
        print(f"keys in {args.out}: serve with --curve-server-secret {made['server']} "
              f"--curve-authorized {args.out / 'authorized'}; clients use their .key_secret and server.key")
    if signing:
        secret, public = make_signing_keys(args.out)
        print(f"signing pair: python -m runtime sign --model BUNDLE --key {secret}; "
              f"serve with --uplink-public-key {public}")
    return 0


def _devices(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.device import available_devices, flight_default

    devices = available_devices()
    chosen, why = flight_default()
    if args.json:
        print(json.dumps({"devices": devices, "flight_default": chosen, "why": why}, indent=1))
    else:
        for d in devices:
            print(f"{d['name']:<14} {d['kind']:<9} {d['description']}")
        print(f"flight default: {chosen} ({why})")
    return 0


def _benchmark(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.bench import benchmark
    from runtime.settings import Settings

    seconds = cfg["benchmark"]["seconds"] if args.seconds is None else args.seconds  # 0 is refused, not "unset"
    settings = Settings.from_config(cfg, device=args.device)  # [inference] profile too, as a serving runtime's
    result = benchmark(args.model, settings.device, seconds, settings.cpu_precision, settings.profile)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    host = result["host_measured"]
    print(f"{result['model']['name']} on {result['device']} ({result['numerics']['inference_precision']}, "
          f"profile {result['numerics']['profile']}): measured on this host {host['throughput_fps']:.1f} FPS, "
          f"p50 {host['latency_ms']['p50']:.2f} ms")
    if result["estimated_myriadx"]:
        print(f"estimated on a Myriad X (cost model, not a measurement): "
              f"{result['estimated_myriadx']['estimated_latency_ms']:.2f} ms")
        unpriced = result["estimated_myriadx"].get("unpriced_ops") or []
        if unpriced:
            print(f"warning: op types not in the cost table, priced by their bytes alone (the estimate is a "
                  f"lower bound): {', '.join(unpriced)}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace, cfg: dict) -> int:
    from runtime.check import check_bundle_dir

    findings = check_bundle_dir(args.model, args.target)
    if args.json:
        print(json.dumps([f.to_json() for f in findings], indent=1))
    else:
        for f in findings:
            print(f"{f.severity:<8} {f.op_type:<16} {f.op_name}: {f.message}  [{f.source}]")
        print(f"{args.model}: {len(findings)} findings for {args.target}, "
              f"{sum(f.severity == 'error' for f in findings)} errors")
    return 1 if any(f.severity == "error" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
