"""A worker process that dies under a candidate (the OOM killer, a segfault) no longer ends the search.

The pool of spawned workers is real; what each worker runs for a genome is a stand-in for the
candidate's evaluation that really kills its own process (``os._exit``) for one genome, as the
OOM killer's SIGKILL does, and returns a record for the others.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from search.space import Genome
from search.workers import ProcessEvaluator

DIES = "dies"      # the genome whose worker dies whenever it is evaluated
ONCE = "once"      # the genome whose worker dies the first time only (a neighbour's OOM, say)


def _genome(width: int) -> Genome:
    return Genome.from_dict({"blocks": [{"kind": "conv", "width": width}, {"kind": "conv", "width": 8, "stride": 2}]})


def _evaluate(genome: Genome, cfg: dict[str, Any], data: Any, out: Path) -> dict[str, Any]:
    """Module-level, so that it pickles into the spawned workers."""
    role = cfg["roles"].get(genome.key)
    if role == DIES or (role == ONCE and not (out / "once-died").exists()):
        if role == ONCE:
            (out / "once-died").touch()
        time.sleep(0.3)  # the other candidates are inside the pool with it
        os._exit(9)
    return {"key": genome.key, "status": "ok", "fitness": 1.0, "worker": {"pid": os.getpid()}}


def test_a_dead_worker_fails_its_own_candidate_and_the_search_goes_on(tmp_path: Path) -> None:
    genomes = [_genome(w) for w in (4, 6, 8, 10, 12)]
    # ONCE first: the first task a worker takes, so it has died once in the shared pool whichever death
    # breaks it. Fourth, it could be still queued when DIES broke the pool (a slow spawn under load, in
    # CI), and its first death came alone, where it is rightly a failure.
    roles = {genomes[0].key: ONCE, genomes[1].key: DIES}
    cfg = {"train": {"land_gate": False}, "roles": roles}
    with ProcessEvaluator(cfg, None, tmp_path, workers=2, evaluate=_evaluate) as evaluator:  # type: ignore[arg-type]
        records = list(evaluator.evaluate(genomes, progress=False))
        # the pool serves the next generation too
        later = list(evaluator.evaluate([_genome(14)], progress=False))
    by_key = {r["key"]: r for r in records}
    assert sorted(by_key) == sorted(g.key for g in genomes) and len(records) == len(genomes)  # each once
    died = by_key[genomes[1].key]
    assert died["status"] == "failed" and died["fitness"] is None and "worker process died" in died["reason"]
    assert died["genome"] == genomes[1].to_dict() and "parameters" in died
    assert [by_key[g.key]["status"] for g in genomes if g is not genomes[1]] == ["ok"] * 4  # ONCE too, re-run
    assert [r["status"] for r in later] == ["ok"]
