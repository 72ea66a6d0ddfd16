"""scripts/seed_study.py's spread over seeds: the sample sd, none for one run, and the seeds it is over."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]

import seed_study  # noqa: E402
from search.ablate import parse_genome  # noqa: E402
from search.config import load_config  # noqa: E402


def _study(out: Path, config: Path, f1s: dict[int, float]) -> None:
    """A study whose seeds are all finished: main trains nothing and summarises them."""
    genome = parse_genome(None, load_config(config))
    runs = [{"seed": seed, "test": {**dict.fromkeys(seed_study.KEYS, 0.5), "f1": f1}} for seed, f1 in f1s.items()]
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"config": str(config), "genome": genome.to_dict(),
                                                "name": str(genome), "runs": runs}))


@pytest.mark.parametrize("f1s, sd", [({0: 0.7}, None), ({0: 0.6, 1: 0.8, 2: 0.7}, 0.1)])
def test_mean_and_sample_sd_with_the_seeds_they_are_over(
        tmp_path: Path, tiny_config_path: Path, f1s: dict[int, float], sd: float | None) -> None:
    """One seed's spread was written as 0.0 (seeds that agree exactly), and the summary did not say
    over how many seeds it was."""
    _study(tmp_path / "study", tiny_config_path, f1s)
    assert seed_study.main(["--config", str(tiny_config_path), "--out", str(tmp_path / "study"),
                            "--seeds", *map(str, f1s), "--part", "val"]) == 0
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    mean, got = study["test_mean_sd"]["f1"]
    assert mean == pytest.approx(sum(f1s.values()) / len(f1s))
    assert got == (None if sd is None else pytest.approx(sd))  # sample sd: sqrt(0.02 / 2)
    assert study["test_seeds"] == list(f1s)


def test_a_study_resumed_on_another_device_is_refused(tmp_path: Path, tiny_config_path: Path) -> None:
    """A study scored on the twin and resumed with ``--device CPU`` would put two devices' test scores
    in one mean +- sd; like a study scored on another split, it is another study."""
    _study(tmp_path / "study", tiny_config_path, {0: 0.7})
    assert seed_study.main(["--config", str(tiny_config_path), "--out", str(tmp_path / "study"), "--seeds", "0"]) == 0
    with pytest.raises(SystemExit, match="CPU"):
        seed_study.main(["--config", str(tiny_config_path), "--out", str(tmp_path / "study"),
                         "--seeds", "0", "1", "--device", "CPU"])


class _Trained(Exception):
    """Raised by the stand-in trainer: the study went on to train another seed."""


def test_a_study_on_flight_is_held_to_the_device_flight_named_when_it_began(
        tmp_path: Path, tiny_config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--device flight`` is the stick on one host and the twin on another: a study begun where it
    was MYRIAD and resumed where it is the twin put both devices' test scores in one mean +- sd,
    since the study recorded the word "flight", not the device."""
    import runtime.device

    def trained(*_: object, **__: object) -> None:
        raise _Trained

    monkeypatch.setattr(seed_study, "evaluate_candidate", trained)
    _study(tmp_path / "begun", tiny_config_path, {0: 0.7})
    args = ["--config", str(tiny_config_path), "--out", str(tmp_path / "begun"), "--device", "flight"]
    monkeypatch.setattr(runtime.device, "flight_default", lambda core=None: ("MYRIAD", "attached"))
    assert seed_study.main([*args, "--seeds", "0"]) == 0  # begun where flight is the stick
    assert json.loads((tmp_path / "begun" / "study.json").read_text())["recipe"]["device"] == "MYRIAD"
    monkeypatch.setattr(runtime.device, "flight_default", lambda core=None: ("myriadx-emu", "no stick"))
    with pytest.raises(SystemExit, match="MYRIAD"):  # before the fix: _Trained, seed 1 scored on the twin
        seed_study.main([*args, "--seeds", "0", "1"])


def test_a_study_names_every_host_its_runs_come_from(tmp_path: Path, tiny_config_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A study resumed on another host overwrote the one host it named: runs from two hosts (whose
    figures differ) were labelled as the last one's. Each run now names its host, the study all of
    them, and a mean over several hosts is said on stderr."""
    _study(tmp_path / "study", tiny_config_path, {0: 0.6, 1: 0.8})
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    study["runs"][0]["host"], study["runs"][1]["host"] = "host A", "host B"
    (tmp_path / "study" / "study.json").write_text(json.dumps(study))
    assert seed_study.main(["--config", str(tiny_config_path), "--out", str(tmp_path / "study"),
                            "--seeds", "0", "1", "--part", "val"]) == 0
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    assert study["hosts"] == ["host A", "host B"]
    assert [r["host"] for r in study["runs"]] == ["host A", "host B"]
    assert "come from 2 hosts" in capsys.readouterr().err
