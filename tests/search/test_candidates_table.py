"""The search report's table of candidates: the pooled scores beside the means."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from search.config import load_config
from search.report import write_report


def _record(key: str, pooled: dict[str, float] | None) -> dict[str, Any]:
    dev: dict[str, Any] = {"miou": 0.77, "vessel_iou": 0.56, "f1": 0.63, "estimated_latency_ms": 29.4,
                           "runtime_latency_p50_ms": 200.0, "device": "myriadx-emu"}
    if pooled is not None:
        dev["pooled"] = pooled
    return {"key": key, "name": f"nas-{key}", "status": "ok", "parameters": 6901, "fitness": 0.6,
            "device_metrics": dev}


def test_the_table_gives_pooled_scores_where_the_records_have_them(tmp_path: Path) -> None:
    # A real-data record pools (what f1_pooled and issue 12's targets read: 0.23 where the mean
    # over chips says 0.56); a synthetic one does not, and its pooled cells stay empty.
    records = {"real": _record("real", {"miou": 0.60, "vessel_iou": 0.23, "f1": 0.66}), "synthetic": _record("synthetic", None)}
    rep = write_report(tmp_path, [{"generation": 0, "fitness": [0.6, 0.6]}], records, load_config(), None)
    rows = {r["key"]: r for r in csv.DictReader((rep / "candidates.csv").open())}
    assert (rows["real"]["vessel_iou"], rows["real"]["pooled_vessel_iou"], rows["real"]["pooled_f1"]) == ("0.56", "0.23", "0.66")
    assert (rows["synthetic"]["pooled_vessel_iou"], rows["synthetic"]["pooled_f1"]) == ("", "")
    table = (rep / "candidates.md").read_text()
    assert "| pooled_vessel_iou | pooled_f1 |" in table and "| 0.56 | 0.63 | 0.23 | 0.66 |" in table


def test_a_candidate_without_fitness_says_why(tmp_path: Path) -> None:
    """A candidate whose latency estimate left op types unpriced has no fitness (a lower bound could
    pass the target by omission) but status "ok": the table showed it as ok with an empty fitness and
    no reason; a failed one says its status, a ranked one nothing."""
    cfg = load_config()
    unpriced = _record("unpriced", {"miou": 0.6, "vessel_iou": 0.2, "f1": 0.6})
    unpriced["fitness"] = None
    unpriced["device_metrics"]["unpriced_ops"] = ["Einsum"]
    failed = {"key": "failed", "name": "nas-failed", "status": "failed", "parameters": 100, "fitness": None}
    records = {"ranked": _record("ranked", None), "unpriced": unpriced, "failed": failed}
    rep = write_report(tmp_path, [{"generation": 0, "fitness": [0.6]}], records, cfg, None)
    rows = {r["key"]: r for r in csv.DictReader((rep / "candidates.csv").open())}
    assert rows["ranked"]["unranked_because"] == ""
    assert "unpriced" in rows["unpriced"]["unranked_because"] and "Einsum" in rows["unpriced"]["unranked_because"]
    assert rows["failed"]["unranked_because"] == "status failed"
