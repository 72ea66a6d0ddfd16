"""Where the runtime's host CPU goes per tile: thread CPU time of its pipeline functions inside a
serving process under the benchmark's load, and of the same vectorisation in a process of its own.

    .venv/bin/python scripts/host_time.py --rounds 8            # inside the serving process
    .venv/bin/python scripts/host_time.py --alone               # vectorize alone, beside a busy thread, beside OpenVINO
    .venv/bin/python scripts/host_time.py --worst               # vectorize on pathological outputs
    .venv/bin/python scripts/host_time.py --cold 8 64           # vectorize alone, caches flushed before each tile
    .venv/bin/python scripts/host_time.py --cold 64 --every 4   # ... before every 4th tile only
    .venv/bin/python scripts/host_time.py --rounds 4 --runtime-config b.toml   # a runtime configured otherwise

Inside: a runtime process (``python -m runtime serve`` on the CPU, f32, default configuration)
is started with each function below wrapped by a ``time.thread_time`` accumulator, and the
benchmark's stream (``benchmarks/test_throughput.py``: the demo scene's tiles encoded before each
round, rounds of 300, window 16, no "done" asked for, ground acknowledgement) is driven through it; each round prints the CPU per tile of
the ground (this process) and of each thread of the runtime process by name (its ``status``
``host_cpu_s``: Python threads by name, ``native`` for OpenVINO's streams, ``zmq``) and the
host's idle time per tile (/proc/stat: every core's, summed; a pipeline that stalls shows here), and at
shutdown the runtime prints ms of thread CPU per tile of each wrapped function. Alone: ``runtime.vectorize.vectorize`` on the model's outputs for the same tiles, in a
process of its own, beside a busy Python thread, and beside OpenVINO inferring on every core in the
same process (back to back, then one tile every 4 ms as the runtime's worker receives them).
Cold: the same ``vectorize`` alone, warm and then with each tile preceded by reading and writing
a buffer of so many MB, as OpenVINO's streams sweep their activations through the caches between
two tiles of the serving process.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: (module, owner attribute or None, function name) wrapped inside the serving process.
WRAPPED = [("runtime.server", "Runtime", "_on_tile"), ("runtime.server", "Runtime", "_post_process"),
           ("runtime.results", None, "vectorize"), ("runtime.protocol", None, "decode_tile"),
           ("runtime.protocol", None, "encode_result"), ("runtime.preprocess", "Preprocessor", "__call__"),
           ("runtime.device", "OpenVINOAdapter", "start_async"), ("runtime.device", "OpenVINOAdapter", "_result"),
           ("runtime.fit", None, "tile_gsd_m")]


def _serve_instrumented(argv: list[str]) -> int:
    """``python -m runtime`` with the functions of :data:`WRAPPED` timed; the table goes to stderr."""
    import importlib

    import rasterio.features

    spent: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def wrap(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                with lock:
                    spent[label] += time.thread_time() - start
                    spent[label + " calls"] += 1
        setattr(owner, name, timed)

    for module, owner, name in WRAPPED:
        mod = importlib.import_module(module)
        wrap(getattr(mod, owner) if owner else mod, name, f"{owner or module}.{name}")
    shapes = rasterio.features.shapes
    rasterio.features.shapes = lambda *a, **k: list(shapes(*a, **k))  # consumed inside the timing
    wrap(rasterio.features, "shapes", "rasterio.features.shapes")

    def report() -> None:
        tiles = max(spent["Runtime._on_tile calls"], 1)
        for label, seconds in sorted(((k, v) for k, v in spent.items() if not k.endswith(" calls")),
                                     key=lambda kv: -kv[1]):
            print(f"{label:36s} {1e3 * seconds / tiles:7.3f} ms/tile  ({int(spent[label + ' calls'])} calls)",
                  file=sys.stderr)
    atexit.register(report)
    from runtime.__main__ import main
    return main(argv)


def _tiles_and_outputs() -> tuple[list[Any], list[np.ndarray]]:
    from flightsim.synthetic import generate_scene, write_scene
    from flightsim.tiles import tile_scene
    from runtime.bundle import read_bundle
    from runtime.device import open_device
    from runtime.preprocess import Preprocessor

    paths = write_scene(generate_scene(7), Path(tempfile.mkdtemp()) / "scene")
    tiles = list(tile_scene(paths["scene"], 256))
    bundle = read_bundle(REPO / "models" / "default")
    adapter = open_device(bundle, "CPU", lambda *_: None, cpu_precision="f32")
    pre = Preprocessor(bundle.manifest["input"], adapter.input_shape)
    return tiles, [adapter.infer(pre(t.pixels, {})[0])[0, 0] for t in tiles]


def alone(repeats: int = 20) -> None:
    """vectorize's thread CPU per tile in a process of its own, then with a busy second thread."""
    import rasterio
    from rasterio.crs import CRS

    from runtime.vectorize import vectorize

    tiles, outputs = _tiles_and_outputs()
    crs = CRS.from_epsg(32631)

    def per_tile() -> float:
        with rasterio.Env():
            start = time.thread_time()
            for _ in range(repeats):
                for out, tile in zip(outputs, tiles):
                    vectorize(out, 0.5, tile.transform, crs, min_area_px=4)
            return 1e3 * (time.thread_time() - start) / (repeats * len(outputs))

    print(f"vectorize alone: {per_tile():.3f} ms/tile thread CPU")
    stop = threading.Event()

    def busy() -> None:
        x = np.zeros((3, 256, 256), np.float32)
        while not stop.is_set():
            (x - 1.0) * 0.5  # noqa: B018 - the main loop's kind of numpy work, holding the GIL in turns
    thread = threading.Thread(target=busy)
    thread.start()
    try:
        print(f"vectorize beside a busy Python thread: {per_tile():.3f} ms/tile thread CPU")
    finally:
        stop.set()
        thread.join()
    _beside_openvino(tiles, outputs, per_tile, crs, repeats)


def _beside_openvino(tiles: list[Any], outputs: list[np.ndarray], per_tile: Any, crs: Any, repeats: int) -> None:
    """vectorize while OpenVINO infers on every core in the same process (as in the runtime):
    back to back, then one tile every 4 ms from a queue, as the runtime's worker receives them."""
    import queue

    import openvino as ov
    import rasterio

    from runtime.vectorize import vectorize

    compiled = ov.Core().compile_model(str(REPO / "models" / "default" / "model.xml"), "CPU",
                                       {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"})
    requests = ov.AsyncInferQueue(compiled, 4)
    x = np.zeros(tuple(compiled.input(0).shape), np.float32)
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            requests.start_async({0: x})
    feeder = threading.Thread(target=feed)
    feeder.start()
    spent: list[float] = []

    def worker(items: queue.SimpleQueue) -> None:
        with rasterio.Env():
            start = time.thread_time()
            while (item := items.get()) is not None:
                vectorize(item[0], 0.5, item[1].transform, crs, min_area_px=4)
            spent.append(time.thread_time() - start)
    try:
        time.sleep(1.0)
        print(f"vectorize beside OpenVINO on every core, back to back: {per_tile():.3f} ms/tile thread CPU")
        items: queue.SimpleQueue = queue.SimpleQueue()
        thread = threading.Thread(target=worker, args=(items,))
        thread.start()
        for _ in range(repeats):
            for out, tile in zip(outputs, tiles):
                items.put((out.copy(), tile))
                time.sleep(0.004)
        items.put(None)
        thread.join()
        print(f"vectorize beside OpenVINO, one tile every 4 ms: {1e3 * spent[0] / (repeats * len(outputs)):.3f} "
              "ms/tile thread CPU")
    finally:
        stop.set()
        feeder.join()
        requests.wait_all()


def _worst_maps() -> dict[str, np.ndarray]:
    """Seeded 256 x 256 probability maps no model should make, but a damaged one could: what one tile
    can cost the vectorise worker (the Health component restarts a worker stuck for hang_timeout_s)."""
    rng = np.random.default_rng(0)
    blob = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    return {
        "uniform noise (half the pixels above 0.5, corner-touching everywhere)": rng.random((256, 256)),
        "one component over the whole tile": np.full((256, 256), 0.9),
        "the whole tile with 10% of its pixels holes": np.where(rng.random((256, 256)) < 0.1, 0.0, 0.9),
        "about 2,000 separate blobs of 4 px": np.kron(rng.random((64, 64)) > 0.5, blob) * 0.9,
    }


def cold(sizes_mb: list[int], every: int = 1, repeats: int = 20) -> None:
    """vectorize's thread CPU per tile alone, warm, then after sweeping each buffer size through the
    caches before every ``every``-th tile, as a worker taking that many tiles at once would see them
    (the sweep itself is not timed)."""
    import rasterio
    from rasterio.crs import CRS

    from runtime.vectorize import vectorize

    tiles, outputs = _tiles_and_outputs()
    crs = CRS.from_epsg(32631)
    for mb in [0, *sizes_mb]:
        junk = np.ones(mb * 2**20 // 8)
        spent = 0.0
        with rasterio.Env():
            for _ in range(repeats):
                for n, (out, tile) in enumerate(zip(outputs, tiles)):
                    if n % every == 0:
                        junk.sum()
                        junk[::8] += 1.0  # one write per cache line
                    start = time.thread_time()
                    vectorize(out, 0.5, tile.transform, crs, min_area_px=4)
                    spent += time.thread_time() - start
        print(f"vectorize after sweeping {mb} MB every {every} tiles: {1e3 * spent / (repeats * len(outputs)):.3f} ms/tile thread CPU")


def worst() -> None:
    """Thread CPU of runtime.vectorize on :func:`_worst_maps`, default connectivity (8), without and
    with models/sar's second stage (on seeded random counts, which it measures every component in)."""
    import rasterio
    from affine import Affine

    from runtime.bundle import read_bundle
    from runtime.discriminate import discriminator_from_manifest
    from runtime.vectorize import vectorize

    second_stage = discriminator_from_manifest(read_bundle(REPO / "models" / "sar").manifest["output"]["discriminator"])
    counts = np.random.default_rng(1).integers(0, 256, (3, 256, 256)).astype(np.uint8)
    with rasterio.Env():
        for name, prob in _worst_maps().items():
            for stage in (None, second_stage):
                start = time.thread_time()
                features = vectorize(prob.astype(np.float32), 0.5, Affine.identity(), None, image=counts,
                                     discriminator=stage)
                print(f"{name}, {'with' if stage else 'without'} models/sar's second stage: "
                      f"{1e3 * (time.thread_time() - start):.0f} ms thread CPU, {len(features)} features")


def inside(rounds: int, tiles_per_round: int = 300, runtime_config: Path | None = None) -> None:
    """The benchmark's stream through an instrumented runtime process; prints its table."""
    from flightsim.streamer import Streamer
    from flightsim.tiles import Tile
    from hil.collector import ResultCollector
    from runtime.client import ControlClient
    from runtime.host import idle_seconds

    tiles, _ = _tiles_and_outputs()
    log = Path(tempfile.mkdtemp()) / "runtime.log"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "serve", "--device", "CPU",
                             "--store", str(log.parent / "store"),
                             *(["--config", str(runtime_config)] if runtime_config else [])],
                            stdout=subprocess.PIPE, stderr=log.open("w"))
    import json

    endpoints = json.loads(proc.stdout.readline())["endpoints"]  # type: ignore[union-attr]
    ControlClient(endpoints["control"]).load_model(REPO / "models" / "default")
    for r in range(rounds):
        collector = ResultCollector(endpoints["results"], acks=endpoints.get("acks"))
        streamer = Streamer(endpoints["tiles"], window=16, want_done=False)
        batch = [Tile(t.scene_id, f"{t.tile_id}#{r}.{i}", i, t.pixels, t.transform, t.crs, t.window, t.bands)
                 for i, t in ((i, tiles[i % len(tiles)]) for i in range(tiles_per_round))]
        messages = [(t.tile_id, t.frames(want_done=False)) for t in batch]  # encoded before, as the benchmark
        control = ControlClient(endpoints["control"])
        served = collections.Counter(control.status()["host_cpu_s"])
        idle = idle_seconds()
        start, ground = time.perf_counter(), time.process_time()
        streamer.stream_frames(messages)
        assert collector.wait_for(tiles_per_round, 120)
        wall, ground = time.perf_counter() - start, time.process_time() - ground
        now_idle = idle_seconds()
        idle_text = "unknown" if idle is None or now_idle is None else f"{1e3 * (now_idle - idle) / tiles_per_round:.2f} ms"
        spent = collections.Counter(control.status()["host_cpu_s"])
        spent.subtract(served)
        per_tile = [(name, 1e3 * s / tiles_per_round) for name, s in spent.most_common() if s > 0]
        print(f"round {r}: {tiles_per_round / wall:.1f} tiles/s; CPU per tile: the ground (this process: "
              f"streamer, collector, their ZeroMQ) {1e3 * ground / tiles_per_round:.2f} ms, the runtime process "
              f"{sum(v for _, v in per_tile):.2f} ms, by thread " + ", ".join(f"{n} {v:.2f}" for n, v in per_tile)
              + f"; every core idle {idle_text} per tile", flush=True)
        collector.close()
        streamer.close()
    ControlClient(endpoints["control"]).shutdown()
    proc.wait(60)
    print("".join(line for line in log.read_text().splitlines(keepends=True) if "ms/tile" in line))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        return _serve_instrumented(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--alone", action="store_true", help="vectorize in a process of its own instead")
    parser.add_argument("--worst", action="store_true", help="vectorize on pathological probability maps instead")
    parser.add_argument("--cold", type=int, nargs="+", metavar="MB",
                        help="vectorize alone after sweeping buffers of these sizes through the caches before each tile")
    parser.add_argument("--every", type=int, default=1, help="with --cold: sweep before every N-th tile only")
    parser.add_argument("--runtime-config", type=Path, help="TOML overriding runtime/defaults.toml for the "
                        "serving process, e.g. [vectorize] batch = 1")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    if args.cold:
        cold(args.cold, args.every)
    elif args.worst:
        worst()
    elif args.alone:
        alone()
    else:
        inside(args.rounds, runtime_config=args.runtime_config and args.runtime_config.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
