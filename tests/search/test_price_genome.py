"""scripts/price_genome.py prices a genome as the search's own scoring does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import price_genome  # noqa: E402


def test_shipped_genome_is_priced_as_its_manifest_says() -> None:
    # models/sar's manifest holds the parameter count and the latency estimate the search measured
    # through hil; its land gate (none since 2026-12-04) is the one whose count matches.
    from search.network import LAND_GATES

    manifest_path = REPO / "models" / "sar" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    rows = [price_genome.price(str(manifest_path), gate, manifest["input"]["shape"][2]) for gate in LAND_GATES]
    matching = [r for r in rows if r["parameters"] == manifest["parameters"]]
    assert len(matching) == 1
    assert matching[0]["estimated_ms"] == pytest.approx(manifest["metrics"]["estimated_latency_ms"], abs=0.05)
    assert (matching[0]["land_gate"] == "none") == (manifest["output"]["meaning"] == "vessel probability per pixel")
    plain, wide = rows[LAND_GATES.index("none")], rows[LAND_GATES.index("wide")]
    assert plain["parameters"] < wide["parameters"] and plain["estimated_ms"] < wide["estimated_ms"]


def test_a_genome_that_cannot_fly_says_why() -> None:
    # over the parameter budget: still priced; a strided first block: not buildable, so not priced
    big = '{"blocks": [{"kind": "conv", "width": 48}, {"kind": "residual", "width": 48, "stride": 2}, ' \
          '{"kind": "residual", "width": 48, "stride": 2}, {"kind": "residual", "width": 48, "stride": 2}]}'
    row = price_genome.price(big, "none")
    assert any("budget" in p for p in row["problems"]) and row["estimated_ms"] is not None
    strided = '{"blocks": [{"kind": "conv", "width": 8, "stride": 2}, {"kind": "conv", "width": 16}]}'
    row = price_genome.price(strided, "none")
    assert any("stride 1" in p for p in row["problems"]) and row["estimated_ms"] is None
