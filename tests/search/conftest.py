"""Shared tiny configurations: every stage runs, nothing is learnt (1-2 steps, 128 px tiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from search.config import load_config

TINY_SEARCH = """
[data]
train_scenes = 2
train_scene_size = 128
val_scenes = 1
val_scene_size = 256

[train]
steps_per_epoch = 2
batch = 2
patch = 64
threads = 1

[export]
tile = 128

[space]
widths = [8, 12]
max_blocks = 3

[candidate]
fp32_epochs = 1
aligned_epochs = 1

[evolution]
population = 3
generations = 2
elite = 1
"""


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY_SEARCH)
    return path


@pytest.fixture()
def tiny_cfg(tiny_config_path: Path) -> dict[str, Any]:
    return load_config(tiny_config_path)
