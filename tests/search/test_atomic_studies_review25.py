"""Study and report files that a resume (or a reader) takes back are never left half written.

Each test runs the real writer in a child process whose file size limit (``RLIMIT_FSIZE``) is
smaller than the file it writes: the write is cut short as by a full disk (``EFBIG``; CPython
ignores ``SIGXFSZ``, so the write raises rather than the process dying). The file that was there
before must still be there, whole: written in place, it was truncated to the limit, and the next
run of a study stopped on a half JSON, losing every finished run's record (hours of training each).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

import seed_study  # noqa: E402
from search.ablate import parse_genome  # noqa: E402
from search.config import load_config  # noqa: E402

#: Bytes a child may write per file: less than any file these tests rewrite.
LIMIT = 32


def _run_limited(code: str, size: int = LIMIT) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (Python, from the repository root) in a child whose files may not grow past
    ``size`` bytes; a write past it fails with ``OSError: [Errno 27] File too large``."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "scripts"), str(ROOT)]),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, preexec_fn=limit,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_seed_study_cut_short_while_saving_keeps_its_finished_runs(tmp_path: Path, tiny_config_path: Path) -> None:
    """scripts/seed_study.py rewrote OUT/study.json in place (``Path.write_text``): cut short, it
    left a truncated file, and the resume's ``json.loads`` failed on it (the finished seeds lost)."""
    out = tmp_path / "study"
    out.mkdir()
    genome = parse_genome(None, load_config(tiny_config_path))
    runs = [{"seed": seed, "test": {**dict.fromkeys(seed_study.KEYS, 0.5), "f1": f1}}
            for seed, f1 in ((0, 0.6), (1, 0.8))]
    (out / "study.json").write_text(json.dumps({"config": str(tiny_config_path), "genome": genome.to_dict(),
                                                "name": str(genome), "runs": runs}))
    args = ["--config", str(tiny_config_path), "--out", str(out), "--seeds", "0", "1", "--part", "val"]
    assert seed_study.main(args) == 0  # prepares the data (not written again below) and saves the spreads
    before = (out / "study.json").read_text()
    assert len(before) > LIMIT

    child = _run_limited(f"import seed_study; seed_study.main({args!r})")
    assert child.returncode != 0 and "File too large" in child.stderr, child.stderr[-2000:]
    assert (out / "study.json").read_text() == before  # before the fix: its first LIMIT bytes
    assert [r["seed"] for r in json.loads(before)["runs"]] == [0, 1]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no temporary file left either


def _record(key: str, fitness: float | None) -> dict[str, object]:
    """A candidate record as the search stores it (search.candidate), with the fields the report reads."""
    return {"key": key, "name": f"conv8-conv8/2|nearest-{key}", "status": "ok" if fitness is not None else "failed",
            "parameters": 5000, "fitness": fitness,
            "device_metrics": {"miou": 0.8, "vessel_iou": 0.6, "f1": 0.7, "estimated_latency_ms": 25.0,
                               "runtime_latency_p50_ms": 90.0, "device": "myriadx-emu", "profile": "fp16-myriadx"}}


def test_a_search_report_cut_short_leaves_the_last_one_whole(tmp_path: Path) -> None:
    """search/report.py wrote candidates.csv, candidates.md and summary.json in place: a report cut
    short left a table truncated mid-row (the first rows, and nothing to say the rest were missing)."""
    from search.report import write_report

    records = {k: _record(k, f) for k, f in (("a", 0.7), ("b", 0.6), ("c", None))}
    generations = [{"generation": 1, "fitness": [0.7, 0.6, None]}]
    rep = write_report(tmp_path, generations, records, load_config(), None)
    names = ("candidates.csv", "candidates.md", "summary.json", "pareto.json", "fitness.png", "pareto.png")
    before = {name: (rep / name).read_bytes() for name in names}
    assert min(len(b) for b in before.values()) > LIMIT

    child = _run_limited(f"""
        import json
        from pathlib import Path
        from search.config import load_config
        from search.report import write_report
        write_report(Path({str(tmp_path)!r}), {generations!r}, json.loads({json.dumps(records)!r}), load_config(), None)
    """)
    assert child.returncode != 0 and "File too large" in child.stderr, child.stderr[-2000:]
    assert {name: (rep / name).read_bytes() for name in names} == before  # before the fix: candidates.csv cut
    assert not [p.name for p in rep.iterdir() if p.name.endswith(".tmp")]


def _scores(value: float) -> dict[str, float]:
    """Pixel scores of one branch as scripts/ablation_study.py's ``scores`` gives them (without by_set)."""
    return {"miou": value, "vessel_iou": value, "miou_mean": value, "vessel_iou_mean": value}


def test_an_ablation_study_run_cut_short_while_recorded_keeps_the_runs_file_readable(tmp_path: Path) -> None:
    """scripts/ablation_study.py appended each finished run to OUT/runs.jsonl: an append cut short left a
    torn last line, and every later run of the study (``--summary-only`` too) stopped on its json.loads.
    Training is stood in for (``one_run``): what is under test is how the run is recorded."""
    row = {"key": "native/split0/seed0", "network": "native", "split_seed": 0, "seed": 0, "fp32": _scores(0.6),
           "post_training": {"fp16-myriadx": _scores(0.59)}, "aligned": {"fp16-myriadx": _scores(0.6)},
           "training_s": 1.0, "seconds": 2.0}
    (tmp_path / "runs.jsonl").write_text(json.dumps(row) + "\n")
    before = (tmp_path / "runs.jsonl").read_text()

    child = _run_limited(f"""
        import ablation_study as study
        study.prepare_data = lambda cfg, root: None
        study.test_split = lambda root: []
        study.one_run = lambda cfg, genome, data, test, seed, profiles: {{k: v for k, v in {row!r}.items()
                                                                         if k not in ("key", "seed")}}
        study.main(["--out", {str(tmp_path)!r}, "--seeds", "0", "1", "--split-seeds", "0", "--networks", "native",
                    "--profiles", "fp16-myriadx"])
    """, size=len(before) + 10)  # room for part of the second run's line, not all of it
    assert child.returncode != 0 and "File too large" in child.stderr, child.stderr[-2000:]
    assert (tmp_path / "runs.jsonl").read_text() == before  # before the fix: a torn second line after it
    assert [json.loads(line)["key"] for line in before.splitlines()] == ["native/split0/seed0"]


def test_a_leave_one_out_study_cut_short_while_saving_keeps_its_folds(tmp_path: Path, tiny_config_path: Path) -> None:
    """scripts/leave_one_out.py rewrote OUT/leave_one_out.json in place after each fold. Training is
    stood in for (``run_fold``): what is under test is how the study is saved."""
    genome = parse_genome(None, load_config(tiny_config_path))
    fold = {"holdout": None, "roles": ["train"], "bundle": "b", "seconds": 1, "postprocessing": None,
            "val_pooled": None}
    study = {"config": str(tiny_config_path), "genome": genome.to_dict(), "name": str(genome), "folds": [fold]}
    (tmp_path / "leave_one_out.json").write_text(json.dumps(study, indent=1))
    before = (tmp_path / "leave_one_out.json").read_text()

    child = _run_limited(f"""
        import leave_one_out as study
        study.run_fold = lambda cfg, genome, holdout, out, device, rotation=None: {{**{fold!r}, "holdout": holdout}}
        study.main(["--config", {str(tiny_config_path)!r}, "--out", {str(tmp_path)!r}, "--holdout", "none", "0"])
    """, size=len(before) + 10)
    assert child.returncode != 0 and "File too large" in child.stderr, child.stderr[-2000:]
    assert (tmp_path / "leave_one_out.json").read_text() == before  # before the fix: a half JSON


def test_training_choices_cut_short_while_saving_keep_their_runs(tmp_path: Path, tiny_config_path: Path) -> None:
    """scripts/training_choices.py rewrote OUT/choices.json in place after each run. Training is stood
    in for (``run_variant``, ``prepare_data``): what is under test is how the record is saved."""
    import training_choices

    genome = parse_genome(None, load_config(tiny_config_path))
    variant = next(iter(training_choices.VARIANTS))
    run = {"seed": 0, "train_s": 1.0, "f1": 0.5, "precision": 0.5, "recall": 0.5, "vessel_iou": 0.3,
           "chosen": None, "f1_chosen": 0.5, "vessel_iou_chosen": 0.3}
    (tmp_path / "choices.json").write_text(json.dumps({"config": str(tiny_config_path), "genome": genome.to_dict(),
                                                       "seeds": [0], "variants": {variant: [run]}}, indent=1))
    before = (tmp_path / "choices.json").read_text()

    child = _run_limited(f"""
        import training_choices as study
        study.prepare_data = lambda cfg, root: None
        study.run_variant = lambda cfg, genome, data, seed: {{**{run!r}, "seed": seed}}
        study.main(["--config", {str(tiny_config_path)!r}, "--out", {str(tmp_path)!r}, "--seeds", "0", "1",
                    "--variants", {variant!r}])
    """, size=len(before) + 10)
    assert child.returncode != 0 and "File too large" in child.stderr, child.stderr[-2000:]
    assert (tmp_path / "choices.json").read_text() == before  # before the fix: a half JSON
