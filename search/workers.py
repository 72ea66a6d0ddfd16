"""Where candidates are evaluated: in this process, in local worker processes, or as Ray tasks.

``run.workers`` (``--workers N``) and ``run.ray_address`` (``--ray-address``) pick the evaluator:

* 1 worker, no address: in this process, one candidate after the other;
* N > 1 workers, no address: a ``concurrent.futures.ProcessPoolExecutor`` of N spawned processes
  (each with ``train.threads`` torch threads, so N x threads should not exceed the cores);
* an address (``auto``, ``ray://head:10001``): Ray tasks on that cluster, at most N at a time, each
  asking for ``train.threads`` CPUs and, when ``candidate.torch_device`` is not ``cpu`` and the
  cluster has GPUs, one GPU. Ray is an optional extra: ``pip install -e .[distributed]``. The
  search directory must be on a file system every node sees (records are written by the driver,
  bundles and hil reports by the workers). A task whose worker dies is run once more, then given a
  ``failed`` record, as a crash in the local pool (:func:`run_ray_tasks`).

Every evaluator yields records as candidates finish, in completion order; the caller persists each
at once.
"""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from tqdm import tqdm

from search.candidate import crashed_record, evaluate_candidate
from search.dataset import SearchData
from search.space import Genome

RAY_EXTRA = "pip install -e '.[distributed]'  (the optional extra 'distributed': ray>=2.9)"


class Evaluator:
    """Sequential evaluation; the base of the parallel ones."""

    def __init__(self, cfg: dict[str, Any], data: SearchData, out: Path):
        self.cfg, self.data, self.out = cfg, data, out

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _run(self, genomes: list[Genome]) -> Iterator[dict[str, Any]]:
        for g in genomes:
            yield evaluate_candidate(g, self.cfg, self.data, self.out)

    def evaluate(self, genomes: list[Genome], desc: str = "", progress: bool = True) -> Iterator[dict[str, Any]]:
        """Records of ``genomes`` as they finish, with a progress bar."""
        if not genomes:
            return
        with tqdm(total=len(genomes), desc=desc, unit="cand", disable=not progress) as bar:
            for record in self._run(genomes):
                bar.update()
                yield record


def _die_with(parent: int) -> None:
    """A worker's initializer: end this process when the search that started it ends, however it
    ends. A search killed alone (SIGKILL, the OOM killer, a plain SIGTERM) runs no cleanup, and its
    workers, blocked on the pool's queue whose write end they hold themselves, trained what was
    queued into OUT/candidates and then idled forever, beside a resumed search that no longer
    saw the folder's lock. Linux: the kernel's parent-death signal; elsewhere (and for a parent
    already gone before it was set) a thread watching the parent's pid. The signal follows the
    thread that started the worker (``pool.submit`` spawns it: the search's own thread, which
    outlives the pool, closed at the end of the search)."""
    if sys.platform.startswith("linux"):
        try:
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, ctypes.c_ulong(signal.SIGKILL),
                                                    *[ctypes.c_ulong(0)] * 3)
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="watch-search", daemon=True).start()


class ProcessEvaluator(Evaluator):
    """A pool of spawned local processes (fork and torch threads do not mix), which end with the
    search (:func:`_die_with`).

    A worker that dies (the OOM killer, a segfault in a native library) breaks the whole pool, and
    every candidate still in it with it: that ended the search, and a resume met the same death.
    Now the pool is made anew and the candidates the crash left unfinished are evaluated again one
    at a time, each alone in the pool, so that the one whose worker dies again is known: it gets a
    ``failed`` record saying so (persisted, as any failed candidate's), and the others their own.
    ``evaluate`` is what a worker runs for a genome (module-level, so that it pickles).
    """

    def __init__(self, cfg: dict[str, Any], data: SearchData, out: Path, workers: int,
                 evaluate: Callable[[Genome, dict[str, Any], SearchData, Path], dict[str, Any]] = evaluate_candidate):
        super().__init__(cfg, data, out)
        self.workers, self._evaluate_one = workers, evaluate
        self.pool = self._pool()

    def _pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_die_with, initargs=(os.getpid(),))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, genomes: list[Genome]) -> Iterator[dict[str, Any]]:
        futures = {self.pool.submit(self._evaluate_one, g, self.cfg, self.data, self.out): g for g in genomes}
        unfinished = dict.fromkeys(genomes)
        try:
            for future in cf.as_completed(futures):
                record = future.result()
                unfinished.pop(futures[future], None)
                yield record
            return
        except BrokenProcessPool:
            self._renew()
        for genome in unfinished:  # alone: a death now is this genome's own
            try:
                record = self.pool.submit(self._evaluate_one, genome, self.cfg, self.data, self.out).result()
            except BrokenProcessPool as err:
                self._renew()
                # alone in the pool, after a death broke the shared one (where it may not have begun yet)
                record = crashed_record(genome, self.cfg, "its worker process died while evaluating it alone in "
                                        f"the pool, after a worker death broke the shared pool: {err}")
            yield record

    def _renew(self) -> None:
        """A fresh pool in place of a broken one (its surviving workers are told to stop)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._pool()


class RayEvaluator(Evaluator):
    """Ray tasks on the cluster at ``address``, at most ``workers`` in flight (:func:`run_ray_tasks`)."""

    def __init__(self, cfg: dict[str, Any], data: SearchData, out: Path, workers: int, address: str):
        super().__init__(cfg, data, out)
        import ray  # checked by make_evaluator

        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address)
        gpu = cfg["candidate"]["torch_device"] != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        # max_retries=0: Ray's own default retries a task whose worker died 3 times, each a whole
        # training (of a candidate that may be what kills its workers); run_ray_tasks retries once,
        # the local pool's rule
        self.task = ray.remote(num_cpus=int(cfg["train"]["threads"]), num_gpus=1 if gpu else 0,
                               max_retries=0)(evaluate_candidate)
        self.workers = workers

    def _run(self, genomes: list[Genome]) -> Iterator[dict[str, Any]]:
        return run_ray_tasks(self.ray, self.task, genomes, self.cfg, self.data, self.out, self.workers)


#: Ray's exceptions that say a task's process (or its node) died under it, not that the candidate's
#: code raised (evaluate_candidate turns every Exception of its own into a ``failed`` record):
#: matched by name along the exception's classes, so that this module and its tests need no Ray.
RAY_DEATHS = frozenset({"WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "LocalRayletDiedError",
                        "ObjectLostError", "OwnerDiedError", "RaySystemError"})


def worker_died(err: BaseException) -> bool:
    """Whether ``err``, raised by ``ray.get`` of a candidate's task, is its worker's death: one of
    :data:`RAY_DEATHS` (or a subclass), or a ``RayTaskError`` whose cause is one, or is a
    ``SystemExit`` / ``KeyboardInterrupt`` (the process told to end: evaluate_candidate catches
    every ``Exception``, so only these get through it). Anything else is a fault of the search's own
    code (an argument that does not pickle, say) and ends the search, as in the local pool."""
    names = {c.__name__ for c in type(err).__mro__}
    if names & RAY_DEATHS:
        return True
    if "RayTaskError" in names:
        cause = getattr(err, "cause", None)
        return isinstance(cause, (SystemExit, KeyboardInterrupt)) or (
            isinstance(cause, BaseException) and cause is not err and worker_died(cause))
    return False


def run_ray_tasks(ray: Any, task: Any, genomes: list[Genome], cfg: dict[str, Any], data: SearchData, out: Path,
                  workers: int) -> Iterator[dict[str, Any]]:
    """Records of ``genomes`` as Ray tasks (``task.remote``; ``ray``: the module, for ``wait`` and
    ``get``) finish, at most ``workers`` at a time.

    A task whose worker died (:func:`worker_died`) is the local pool's crash: the search goes on,
    the candidate is run once more, and a second death gives it a ``failed`` record saying so
    (:func:`search.candidate.crashed_record`). A death of its own or a neighbour's (Ray's memory
    monitor kills the newest task, not the greediest) cannot be told apart from here: hence the
    one retry, as a death in the shared local pool gets."""
    pending: list[tuple[Genome, int]] = [(g, 0) for g in genomes]  # (genome, deaths so far)
    running: dict[Any, tuple[Genome, int]] = {}
    while pending or running:
        while pending and len(running) < workers:
            genome, deaths = pending.pop(0)
            running[task.remote(genome, cfg, data, out)] = (genome, deaths)
        done, _ = ray.wait(list(running), num_returns=1)
        genome, deaths = running.pop(done[0])
        try:
            record = ray.get(done[0])
        except BaseException as err:
            if not worker_died(err):
                raise
            if deaths == 0:
                pending.insert(0, (genome, 1))  # first in line: its slot was just freed
                continue
            record = crashed_record(genome, cfg, f"its Ray task's worker died twice while evaluating it: "
                                    f"{type(err).__name__}: {err}")
        yield record


def make_evaluator(cfg: dict[str, Any], data: SearchData, out: Path) -> Evaluator:
    """The evaluator ``cfg["run"]`` asks for.

    Raises:
        RuntimeError: if a Ray address is given and Ray is not installed (names the extra).
        ValueError: for fewer than 1 worker.
    """
    workers, address = int(cfg["run"]["workers"]), str(cfg["run"]["ray_address"])
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    if address:
        try:
            import ray  # noqa: F401
        except ImportError as err:
            raise RuntimeError(f"--ray-address {address!r} needs Ray, which is not installed: {RAY_EXTRA}") from err
        return RayEvaluator(cfg, data, out, workers, address)
    if workers > 1:
        return ProcessEvaluator(cfg, data, out, workers)
    return Evaluator(cfg, data, out)
