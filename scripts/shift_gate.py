"""A copy of a gated flight-model bundle whose land gate's sea logit is lowered by a constant.

What ``[export] sea_shift`` does to a network as it is trained, done to a bundle already made: a
Subtract before the gate's sea Sigmoid, everything else as it was (weights, threshold, cuts,
second stage). The golden tile is measured again on the flight device, since the expected output
changes. docs/models.md ("A post-hoc bias on the gate") measured the shift on networks trained
without it this way, each copy then given a second stage of its own:

    .venv/bin/python scripts/shift_gate.py --model BUNDLE --shift 1 --out SHIFTED
    .venv/bin/python -m search discriminate --model SHIFTED --split OUT/data/split.json --out SHIFTED-2nd
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.bundle import GOLDEN_FILE, Bundle, read_bundle, rewritable_manifest, write_bundle  # noqa: E402
from runtime.golden import with_golden  # noqa: E402
from scripts.land_gate_quality import gate_sigmoids, read_ir  # noqa: E402


def shift_gate(model: Path, shift: float, out: Path, device: str = "myriadx-emu") -> Bundle:
    """Write ``out``: ``model`` with its sea logit lowered by ``shift`` (golden tile measured on
    ``device``). Raises ValueError for a network without a land gate."""
    import openvino as ov
    import openvino.opset8 as ops

    bundle = read_bundle(model)
    ir = read_ir(bundle.files["model.xml"], bundle.files["model.bin"])
    _, sea = gate_sigmoids(ir, str(model))
    lowered = ops.subtract(sea.input_value(0), ops.constant(np.float32(shift)))
    sea.input(0).replace_source_output(lowered.output(0))
    manifest = rewritable_manifest(bundle)
    manifest.pop("golden", None)
    manifest["derived_from"] = {"sha256": bundle.id, "name": bundle.name,
                                "change": f"land gate's sea logit lowered by {shift}",
                                "command": f"scripts/shift_gate.py --shift {shift}"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.xml"
        ov.save_model(ir, path, compress_to_fp16=False)  # the FP16 constants stay as they were
        write_bundle(out, path.read_bytes(), path.with_suffix(".bin").read_bytes(), manifest, {})
    if GOLDEN_FILE in bundle.files:
        with np.load(io.BytesIO(bundle.files[GOLDEN_FILE]), allow_pickle=False) as golden:
            # the bundle's own golden tile measured again, whatever it holds: a candidate's may
            # hold no vessel (runtime.golden.with_golden), and a lowered sea logit can only remove some
            with_golden(out, golden["tile"], device=device, require_vessels=False)
    return read_bundle(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a bundle whose network flies a land gate")
    parser.add_argument("--shift", type=float, required=True, help="lower the sea logit by this much")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="myriadx-emu", help="where the golden tile is measured again")
    args = parser.parse_args(argv)
    print(shift_gate(args.model, args.shift, args.out, args.device).id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
