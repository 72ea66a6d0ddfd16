"""candidates.md marks the candidate that became the flight model and those over the limits.

The table was sorted by fitness and said nothing of the pick: a fitter candidate over ``[fitness]
latency_limit_ms`` sat on top with no word on why another one flew.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from search.config import load_config
from search.report import COLUMNS, write_report


def _record(key: str, fitness: float, latency: float, parameters: int = 5000) -> dict[str, Any]:
    dev = {"miou": 0.7, "vessel_iou": 0.5, "f1": 0.6, "estimated_latency_ms": latency,
           "runtime_latency_p50_ms": 100.0, "device": "myriadx-emu"}
    return {"key": key, "name": f"nas-{key}", "status": "ok", "parameters": parameters, "fitness": fitness,
            "device_metrics": dev}


def _flight_cells(rep: Path) -> dict[str, str]:
    """Each markdown row's ``flight`` cell by key (cells split as a markdown renderer splits them)."""
    cells = {}
    for line in (rep / "candidates.md").read_text().splitlines():
        row = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(row) == len(COLUMNS) and row[0] not in ("key", "---"):
            cells[row[0]] = dict(zip(COLUMNS, row))["flight"]
    return cells


def test_the_table_marks_the_flight_model_and_the_candidates_over_the_limits(tmp_path: Path) -> None:
    cfg = load_config()
    cfg["fitness"]["latency_limit_ms"] = 30.0
    cfg["space"]["max_parameters"] = 10000
    records = {"fast": _record("fast", 0.7, 25.0), "slow": _record("slow", 0.8, 40.0),
               "big": _record("big", 0.6, 20.0, parameters=20000), "other": _record("other", 0.5, 20.0)}
    rep = write_report(tmp_path, [{"generation": 1, "fitness": [0.7, 0.8, 0.6, 0.5]}], records, cfg,
                       records["fast"])
    cells = _flight_cells(rep)
    assert cells["fast"] == "flight model"
    assert "over the latency limit (40.0 > 30.0 ms)" in cells["slow"]
    assert "over the parameter budget (20000 > 10000)" in cells["big"]
    assert cells["other"] == ""
    text = (rep / "candidates.md").read_text()
    assert "Flight model: nas-fast (key fast" in text and "latency_limit_ms = 30.0" in text


def test_a_final_training_that_flies_marks_its_genome_and_the_candidate_it_replaced(tmp_path: Path) -> None:
    cfg = load_config()
    records = {"searched": _record("searched", 0.8, 20.0), "next": _record("next", 0.7, 20.0)}
    final = {**_record("next", 0.82, 20.0), "final_budget": {"fp32_epochs": 2, "aligned_epochs": 0},
             "searched": {"key": "searched", "name": "nas-searched"}}
    rep = write_report(tmp_path, [{"generation": 1, "fitness": [0.8, 0.7]}], records, cfg, final)
    cells = _flight_cells(rep)
    assert cells["next"] == "flight model's genome, trained again ([final])"
    assert cells["searched"].startswith("flight candidate; the [final] training of nas-next flies")
    # no flight model at all: nothing marked as one, and the header says so
    rep = write_report(tmp_path / "none", [{"generation": 1, "fitness": [0.8, 0.7]}], records, cfg, None)
    assert set(_flight_cells(rep).values()) == {""}
    assert "Flight model: none" in (rep / "candidates.md").read_text()
