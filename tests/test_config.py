"""One configuration per package: every command takes ``--config``, every key of a package's
defaults is read by its code, and an override reaches what it configures."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

from runtime.config import tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "flightsim", "hil", "search")

#: Every command of every package CLI.
COMMANDS = {
    "runtime": ["serve", "supervise", "control", "keys", "sign", "infer", "devices", "benchmark", "check", "probe",
                "compile"],
    "flightsim": ["generate", "stream"],
    "hil": ["run"],
    "search": ["train-baseline", "run", "ablate", "retype"],
}


@pytest.mark.parametrize("package,command", [(p, c) for p, cs in COMMANDS.items() for c in cs])
def test_every_command_takes_config(package: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(f"{package}.__main__").main
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "--config" in capsys.readouterr().out, f"python -m {package} {command} has no --config"


def _leaves(table: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in table.items():
        out += _leaves(value, prefix + (key,)) if isinstance(value, dict) else [prefix + (key,)]
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_every_default_is_read_by_its_package(package: str) -> None:
    """A key that no code names is a setting that does nothing: remove it or read it. A key is read
    when the package's code names it as a string (``cfg["key"]``, ``.get("key")``)."""
    defaults = tomllib.loads((REPO / package / "defaults.toml").read_text())
    source = "\n".join(p.read_text() for p in (REPO / package).rglob("*.py"))
    unread = [".".join(path) for path in _leaves(defaults)
              if not all(re.search(rf"""["']{re.escape(k)}["']""", source) for k in path)]
    assert not unread, f"{package}/defaults.toml keys nothing in {package}/ reads: {unread}"


def test_flightsim_generate_takes_its_scene_from_the_config(tmp_path: Path) -> None:
    from flightsim.__main__ import main

    cfg = tmp_path / "f.toml"
    cfg.write_text("[synthetic]\nsize = 96\ngsd_m = 5.0\n")
    assert main(["generate", "--seed", "3", "--out", str(tmp_path / "s"), "--config", str(cfg)]) == 0
    import rasterio

    with rasterio.open(tmp_path / "s" / "scene.tif") as src:
        assert (src.width, src.height, src.res) == (96, 96, (5.0, 5.0))
    cfg.write_text("[synthetic]\nsizes = 96\n")
    assert main(["generate", "--seed", "3", "--out", str(tmp_path / "t"), "--config", str(cfg)]) == 2


def test_hil_run_takes_its_settings_from_the_config(tmp_path: Path, brightness_bundle: Path) -> None:
    from hil.__main__ import main

    cfg = tmp_path / "h.toml"
    cfg.write_text(f'[run]\nreport_dir = "{tmp_path / "report"}"\ndevice = "CPU"\nsynthetic_seed = 9\n'
                   '[overview]\nmax_side_px = 120\n')
    assert main(["run", "--config", str(cfg), "--scene", "synthetic:size=128", "--model", str(brightness_bundle),
                 "--quiet"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["device"] == "CPU"
    assert report["scene"]["seed"] == 9  # a synthetic scene given without a seed takes [run] synthetic_seed
    from PIL import Image

    assert max(Image.open(tmp_path / "report" / "overview.png").size) <= 120


#: The search configurations the repository ships (configs/).
SHIPPED_CONFIGS = sorted((REPO / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_each_shipped_search_configuration_loads(path: Path) -> None:
    """A misspelt setting in one of configs/*.toml fails here, not two hours into a search."""
    from search.config import load_config

    cfg = load_config(path)
    assert cfg["data"] and cfg["train"]


def test_a_misspelt_search_setting_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    from search.config import load_config

    assert len(SHIPPED_CONFIGS) >= 5
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nsteps_per_epoc = 10\n")
    with pytest.raises(ValueError, match="unknown setting 'steps_per_epoc'.*steps_per_epoch"):
        load_config(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_value_where_a_table_belongs_is_a_clear_error(package: str, tmp_path: Path) -> None:
    """``evolution = 3`` for ``[evolution]`` (say) was merged as given and found later as a TypeError
    far from the file; it is refused when the file is read, naming the table and its keys."""
    from runtime.config import load_defaults

    defaults = REPO / package / "defaults.toml"
    table = next(k for k, v in tomllib.loads(defaults.read_text()).items() if isinstance(v, dict))
    user = tmp_path / "user.toml"
    user.write_text(f"{table} = 3\n")
    with pytest.raises(ValueError, match=rf"'{table}' is a table"):
        load_defaults(defaults, user)
