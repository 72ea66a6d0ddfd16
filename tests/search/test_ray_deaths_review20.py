"""A Ray task whose worker dies no longer ends the search: it is the local pool's crash (run once
more, then a ``failed`` record), decided by :func:`search.workers.worker_died`.

Ray is an optional extra, not installed where these run: the exceptions are classes with Ray's
names (the decision reads names, so that it needs no Ray), and :func:`search.workers.run_ray_tasks`,
the loop the Ray evaluator runs, is driven by a stand-in for ``ray.wait`` / ``ray.get`` that runs
each task in this process. What the real cluster does is not run here (see docs/search.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from search.space import Genome
from search.workers import run_ray_tasks, worker_died


class RayError(Exception):
    pass


class WorkerCrashedError(RayError):
    pass


class OutOfMemoryError(RayError):
    pass


class RayTaskError(RayError):
    def __init__(self, cause: BaseException):
        super().__init__(f"task raised {cause!r}")
        self.cause = cause


def test_worker_deaths_are_told_from_the_search_s_own_faults() -> None:
    assert worker_died(WorkerCrashedError("worker died"))
    assert worker_died(OutOfMemoryError("killed by the memory monitor"))
    assert worker_died(RayTaskError(SystemExit(1)))  # the process told to end: evaluate_candidate lets it through
    assert worker_died(RayTaskError(WorkerCrashedError("nested")))
    assert not worker_died(RayTaskError(TypeError("cannot pickle")))  # a fault of the search's code
    assert not worker_died(ValueError("plain"))
    assert not worker_died(KeyboardInterrupt())  # the driver's own Ctrl-C ends the search


def _genome(width: int) -> Genome:
    return Genome.from_dict({"blocks": [{"kind": "conv", "width": width}, {"kind": "conv", "width": 8, "stride": 2}]})


class _Ref:
    def __init__(self, outcome: Any):
        self.outcome = outcome


class _StandInRay:
    """``ray.wait`` and ``ray.get`` over refs already resolved; ``wait`` takes the oldest."""

    @staticmethod
    def wait(refs: list[_Ref], num_returns: int) -> tuple[list[_Ref], list[_Ref]]:
        return refs[:num_returns], refs[num_returns:]

    @staticmethod
    def get(ref: _Ref) -> dict[str, Any]:
        if isinstance(ref.outcome, BaseException):
            raise ref.outcome
        return ref.outcome


class _Task:
    """``task.remote``: runs the stand-in evaluation now, counting each genome's runs."""

    def __init__(self, deaths: dict[str, int], error: BaseException | None = None):
        self.deaths, self.error, self.runs = deaths, error, {}

    def remote(self, genome: Genome, cfg: dict[str, Any], data: Any, out: Path) -> _Ref:
        self.runs[genome.key] = self.runs.get(genome.key, 0) + 1
        if self.error is not None:
            return _Ref(self.error)
        if self.runs[genome.key] <= self.deaths.get(genome.key, 0):
            return _Ref(RayTaskError(SystemExit(9)) if genome.blocks[0].width == 6 else WorkerCrashedError("SIGKILL"))
        return _Ref({"key": genome.key, "status": "ok", "fitness": 1.0})


def test_a_dead_ray_worker_fails_its_own_candidate_and_the_search_goes_on(tmp_path: Path) -> None:
    genomes = [_genome(w) for w in (4, 6, 8, 12)]
    dies, once = genomes[0], genomes[1]
    task = _Task({dies.key: 99, once.key: 1})
    cfg = {"train": {"land_gate": False}}
    records = list(run_ray_tasks(_StandInRay(), task, genomes, cfg, None, tmp_path, 2))  # type: ignore[arg-type]
    by_key = {r["key"]: r for r in records}
    assert len(records) == len(genomes) and sorted(by_key) == sorted(g.key for g in genomes)
    died = by_key[dies.key]
    assert died["status"] == "failed" and died["fitness"] is None and "died twice" in died["reason"]
    assert died["genome"] == dies.to_dict() and "WorkerCrashedError" in died["reason"]
    assert [by_key[g.key]["status"] for g in genomes[1:]] == ["ok"] * 3  # once: run again, and fine
    assert task.runs == {dies.key: 2, once.key: 2, genomes[2].key: 1, genomes[3].key: 1}  # one retry, no more


def test_a_fault_of_the_search_s_own_code_still_ends_it(tmp_path: Path) -> None:
    task = _Task({}, error=RayTaskError(TypeError("cannot pickle 'generator' object")))
    cfg = {"train": {"land_gate": False}}
    with pytest.raises(RayTaskError, match="cannot pickle"):
        list(run_ray_tasks(_StandInRay(), task, [_genome(4)], cfg, None, tmp_path, 1))  # type: ignore[arg-type]
