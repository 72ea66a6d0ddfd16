"""The baseline's and the ablation's patch checked before their data is prepared, and the report's
markdown table with one cell per column where a genome's name holds a "|"."""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from search.ablate import parse_genome, run_ablation
from search.baseline import train_baseline
from search.config import load_config
from search.report import COLUMNS, write_report


def test_the_baseline_refuses_a_patch_its_stride_does_not_divide(tmp_path: Path) -> None:
    # widths of four levels: a total stride of 8; a 68 px patch failed in the first batch with a torch
    # size mismatch (a traceback), after the data was prepared
    config = tmp_path / "baseline.toml"
    config.write_text("[train]\npatch = 68\n[model]\nwidths = [8, 12, 16, 24]\n")
    with pytest.raises(ValueError, match=r"\[train\] patch 68 must be a multiple of 8 .*valid: e\.g\. 64"):
        train_baseline(tmp_path / "bundle", config_path=config, progress=False, data_dir=tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_the_ablation_refuses_a_patch_its_genomes_stride_does_not_divide(tiny_cfg: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    cfg = copy.deepcopy(tiny_cfg)
    cfg["train"]["patch"] = 68  # the [ablate] genome has three stride-2 blocks: 8
    with pytest.raises(ValueError, match=r"\[train\] patch 68 must be a multiple of 8 "):
        run_ablation(cfg, tmp_path, progress=False)
    assert not (tmp_path / "data").exists()


def test_each_markdown_row_has_one_cell_per_column(tmp_path: Path) -> None:
    dev = {"miou": 0.7, "vessel_iou": 0.5, "f1": 0.6, "estimated_latency_ms": 8.0, "runtime_latency_p50_ms": 30.0,
           "device": "myriadx-emu"}
    records = {"k": {"key": "k", "name": "conv8-conv12/2|nearest", "status": "ok", "parameters": 1000,
                     "fitness": 0.69, "device_metrics": dev}}
    rep = write_report(tmp_path, [{"generation": 1, "fitness": [0.69]}], records, load_config(), None)
    row = (rep / "candidates.md").read_text().splitlines()[-1]
    cells = re.split(r"(?<!\\)\|", row)[1:-1]  # a markdown renderer's cells: "|" unless escaped
    assert len(cells) == len(COLUMNS)
    assert dict(zip(COLUMNS, (c.strip() for c in cells)))["status"] == "ok"


def test_the_table_names_each_figures_profile_and_host(tmp_path: Path) -> None:
    """The note said host_latency_p50_ms was measured "on this host", and no column said where or
    under which profile (with robust_profiles, each candidate's worst) a candidate was measured."""
    dev = {"miou": 0.7, "vessel_iou": 0.5, "f1": 0.6, "estimated_latency_ms": 8.0, "runtime_latency_p50_ms": 30.0,
           "device": "myriadx-emu", "profile": "myriadx-native-interp"}
    records = {"k": {"key": "k", "name": "nas-k", "status": "ok", "parameters": 1000, "fitness": 0.69,
                     "device_metrics": dev, "worker": {"host": "ray-node-3", "pid": 7}}}
    rep = write_report(tmp_path, [{"generation": 1, "fitness": [0.69]}], records, load_config(), None)
    row = next(csv.DictReader((rep / "candidates.csv").open()))
    assert (row["device"], row["profile"], row["host"]) == ("myriadx-emu", "myriadx-native-interp", "ray-node-3")
    assert "on this host" not in (rep / "candidates.md").read_text()


@pytest.mark.parametrize("blocks,says", [
    (3, r"\[ablate\]: not a genome \(TypeError"),  # was a TypeError traceback
    ([{"kind": "conv", "widht": 16}], r"\[ablate\]: not a genome .*\['widht'\]; valid: \['kind', 'width'"),  # KeyError
    ([{"kind": "conv", "width": 16, "strid": 2}], r"unknown key\(s\) \['strid'\]"),  # was trained at stride 1
])
def test_a_malformed_ablate_genome_is_refused_naming_it(tiny_cfg: dict[str, Any], blocks: Any, says: str) -> None:
    cfg = copy.deepcopy(tiny_cfg)
    cfg["ablate"]["blocks"] = blocks
    with pytest.raises(ValueError, match=says):
        parse_genome(None, cfg)
    if isinstance(blocks, list):
        with pytest.raises(ValueError, match=r"--genome: not a genome"):
            parse_genome(json.dumps({"blocks": blocks}), cfg)
