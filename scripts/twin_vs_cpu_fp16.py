"""The twin's FP16 against real FP16 arithmetic: a model's probabilities on the CPU told to compute
in f16 (a host with AVX-512 FP16 does it in binary16, where ``runtime probe --device CPU
--cpu-precision f16`` matches ``fp16-ieee``), on the twin under FP16 profiles, and on the CPU in f32.

    .venv/bin/python scripts/twin_vs_cpu_fp16.py --model models/default                 # the demo scene's 16 tiles
    .venv/bin/python scripts/twin_vs_cpu_fp16.py --model models/sar --ssdd 30            # 30 SSDD chips, tiled

For each pair it prints the largest and mean difference of the probabilities over every valid pixel,
the share of values that are equal, and the pixels that land on different sides of the model's
threshold. Refuses to run where the CPU plugin does not compute in f16 (the comparison would be
f32 against the twin).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.bundle import read_bundle  # noqa: E402
from runtime.device import open_device  # noqa: E402
from runtime.host import host_line  # noqa: E402
from runtime.preprocess import Preprocessor  # noqa: E402

#: The devices compared: (label, device, options of runtime.device.open_device).
DEVICES = (("cpu-f16", "CPU", {"cpu_precision": "f16"}), ("twin fp16-ieee", "myriadx-emu", {"profile": "fp16-ieee"}),
           ("twin fp16-myriadx", "myriadx-emu", {"profile": "fp16-myriadx"}), ("cpu-f32", "CPU", {"cpu_precision": "f32"}))


def demo_tiles() -> list[np.ndarray]:
    """The 256 x 256 tiles of the held-out synthetic scene (seed 7), as the demo and the bench stream them."""
    from flightsim.synthetic import generate_scene, write_scene
    from flightsim.tiles import tile_scene

    paths = write_scene(generate_scene(7), Path(tempfile.mkdtemp()) / "scene")
    return [t.pixels for t in tile_scene(paths["scene"], 256)]


def ssdd_tiles(chips: int, size: int = 256) -> list[np.ndarray]:
    """The first ``chips`` SSDD chips cut into windows of ``size`` (the last ones short)."""
    from flightsim.sources import open_source
    from flightsim.tiles import tile_grid

    source = open_source(f"coco:{REPO.parent / 'shared' / 'data' / 'ssdd' / 'images'}")
    samples = [source[i] for i in range(min(chips, len(source)))]
    return [s.read(window) for s in samples for window in tile_grid(s.height, s.width, size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="bundle directory")
    parser.add_argument("--ssdd", type=int, metavar="N", help="the first N SSDD chips instead of the demo scene")
    args = parser.parse_args(argv)
    bundle = read_bundle(args.model)
    adapters = {label: open_device(bundle, device, lambda *_: None, infer_requests=1, **opts)
                for label, device, opts in DEVICES}
    precision = adapters["cpu-f16"].numerics.get("inference_precision")
    if precision != "f16":
        print(f"the CPU plugin computes in {precision} when told f16 on this host: nothing to compare "
              f"({host_line()})", file=sys.stderr)
        return 2
    tiles = ssdd_tiles(args.ssdd) if args.ssdd else demo_tiles()
    prep = Preprocessor(bundle.manifest["input"], adapters["cpu-f32"].input_shape)
    probs: dict[str, list[np.ndarray]] = {label: [] for label in adapters}
    for tile in tiles:
        batch, (h, w) = prep(tile, {})
        for label, adapter in adapters.items():
            probs[label].append(adapter.infer(batch)[0, 0, :h, :w].astype(np.float64).ravel())
    flat = {label: np.concatenate(p) for label, p in probs.items()}
    if np.array_equal(flat["cpu-f16"], flat["cpu-f32"]):  # the hint accepted, the arithmetic unchanged
        print(f"the CPU plugin told f16 computes exactly as in f32 on this host ({host_line()})", file=sys.stderr)
        return 2
    threshold = bundle.threshold
    print(f"{args.model}: {len(tiles)} tiles, {flat['cpu-f32'].size} pixels, threshold {threshold}; {host_line()}")
    for a, b in combinations(flat, 2):
        diff = np.abs(flat[a] - flat[b])
        flips = int(((flat[a] >= threshold) != (flat[b] >= threshold)).sum())
        print(f"  {a:17s} vs {b:17s}: max |dp| {diff.max():.2g}, mean {diff.mean():.2g}, equal {np.mean(diff == 0):.1%}, "
              f"pixels on the other side of the threshold {flips} ({flips / diff.size:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
