"""What a genome costs before it is trained: parameters and the Myriad X cost model's latency estimate.

Each genome is built (untrained weights: the cost model reads shapes, not values), exported as the
search exports a candidate (FP16 IR, the target check included) and priced by
:func:`runtime.latency.estimate_latency`, with and without a land gate, by the function the search
prices a final recipe with (``search.final.recipe_estimate``, float32 input); the last column says what
would stop it from flying (the parameter budget, strides, the tile; a genome that cannot be built
is not priced). An estimate with op types the cost table does not price is shown as a lower bound
(``>= ms``, naming them), as the search holds it:

    .venv/bin/python scripts/price_genome.py models/sar/manifest.json \\
        '{"blocks": [{"kind": "conv", "width": 8}, {"kind": "conv", "width": 16, "stride": 2}]}'

A genome is JSON text, a JSON file or a bundle manifest (as ``--genome`` of the other scripts).
The latency is an ESTIMATE of the cost model (docs/devices.md), not a measurement.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.ablate import parse_genome  # noqa: E402
from search.config import load_config  # noqa: E402
from search.final import recipe_estimate  # noqa: E402
from search.network import LAND_GATES  # noqa: E402
from search.space import SpaceConfig, count_parameters, violations  # noqa: E402


def price(genome_arg: str, land_gate: str, tile: int | None = None) -> dict[str, object]:
    """Parameters and the estimated Myriad X ms (total and by unit) of one genome with ``land_gate``,
    and what stops it from being built and flown at all (the parameter budget, strides, the tile:
    ``search.space.violations`` outside the search's own choices; empty when nothing does).
    ``tile``: the IR's input side, default ``[export] tile``."""
    cfg = load_config()
    tile = int(cfg["export"]["tile"]) if tile is None else tile
    genome = parse_genome(genome_arg, cfg)
    space = SpaceConfig.from_dict(cfg["space"], tile)
    problems = violations(genome, space, within_space=False)
    row: dict[str, object] = {"genome": str(genome), "land_gate": land_gate, "problems": problems,
                              "parameters": count_parameters(genome, land_gate), "estimated_ms": None, "by_unit": {},
                              "unpriced_ops": []}
    if violations(genome, replace(space, max_parameters=sys.maxsize), within_space=False):
        return row  # it cannot be built or exported as it is; over the budget alone, it can still be priced
    cfg["train"]["land_gate"], cfg["export"]["tile"] = land_gate, tile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimate = recipe_estimate(genome, cfg, None)  # as the search prices a final recipe
    row.update(estimated_ms=round(estimate.total_ms, 1), unpriced_ops=estimate.unpriced_ops,
               by_unit={k: round(v, 1) for k, v in estimate.by_unit().items()})
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("genomes", nargs="+", help="JSON text, a JSON file or a bundle manifest")
    parser.add_argument("--land-gates", nargs="+", default=["none", "wide"], choices=LAND_GATES,
                        help="land gates to price each genome with")
    parser.add_argument("--tile", type=int, default=None, help="the IR's input side (default: [export] tile)")
    args = parser.parse_args(argv)
    print("| genome | land gate | parameters | est. Myriad X ms | by unit | what stops it flying |")
    print("|---|---|---|---|---|---|")
    for arg in args.genomes:
        for gate in args.land_gates:
            row = price(arg, gate, args.tile)
            name = str(row["genome"]).replace("|", "\\|")  # a pipe would split the markdown cell
            problems = "; ".join(row["problems"]) or "nothing"  # type: ignore[arg-type]
            ms = "-" if row["estimated_ms"] is None else row["estimated_ms"]
            if row["unpriced_ops"]:  # priced by their bytes alone: the total is a lower bound
                ms = f">= {ms} (unpriced: {', '.join(row['unpriced_ops'])})"  # type: ignore[arg-type]
            print(f"| `{name}` | {gate} | {row['parameters']:,} | {ms} | {row['by_unit'] or '-'} | {problems} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
