"""After a worker's death breaks the local pool, the candidates that had finished keep their
records: only the dead worker's candidate (and any that were still running or queued) are run again.

The pool is real; each worker runs a stand-in for the candidate's evaluation that counts its runs
in files, and, for one genome, kills its own process once every other genome has finished.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from search.space import Genome
from search.workers import ProcessEvaluator


def _genome(width: int) -> Genome:
    return Genome.from_dict({"blocks": [{"kind": "conv", "width": width}, {"kind": "conv", "width": 8, "stride": 2}]})


def _evaluate(genome: Genome, cfg: dict[str, Any], data: Any, out: Path) -> dict[str, Any]:
    """Module-level, so that it pickles into the spawned workers."""
    runs = out / "runs"
    (runs / f"{genome.key}.{len(list(runs.glob(genome.key + '.*')))}").touch()
    if genome.key == cfg["dies"]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list((out / "done").iterdir())) < cfg["others"]:
            time.sleep(0.05)
        time.sleep(0.3)  # the others' records are on their way back
        os._exit(9)
    (out / "done" / genome.key).touch()
    return {"key": genome.key, "status": "ok", "fitness": 1.0}


def test_finished_candidates_are_not_trained_again_after_a_pool_crash(tmp_path: Path) -> None:
    genomes = [_genome(w) for w in (4, 6, 8, 10)]
    (tmp_path / "runs").mkdir()
    (tmp_path / "done").mkdir()
    cfg = {"train": {"land_gate": False}, "dies": genomes[1].key, "others": len(genomes) - 1}
    with ProcessEvaluator(cfg, None, tmp_path, workers=2, evaluate=_evaluate) as evaluator:  # type: ignore[arg-type]
        records = list(evaluator.evaluate(genomes, progress=False))
    assert sorted(r["key"] for r in records) == sorted(g.key for g in genomes)
    runs = sorted(p.name.rsplit(".", 1)[0] for p in (tmp_path / "runs").iterdir())
    assert runs == sorted([g.key for g in genomes] + [genomes[1].key])  # the dead one twice, the others once
