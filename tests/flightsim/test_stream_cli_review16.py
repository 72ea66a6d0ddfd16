"""flightsim's command line, what an operator is told: tables of --config a command does not read,
--key-name without --keys, and a stream whose tiles the runtime rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from flightsim.__main__ import main
from runtime.server import Runtime


@pytest.mark.parametrize("command, toml", [
    (["stream", "--scene", "x.tif", "--tiles", "ipc:///tmp/none"], "[timing]\nburst = 2\n"),
    (["stream", "--scene", "x.tif", "--tiles", "ipc:///tmp/none"], "[faults]\nreorder_depth = 2\n"),
    (["generate", "--seed", "1", "--out", "o"], "[stream]\nwindow = 4\n"),
])
def test_a_config_table_the_command_does_not_read_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], toml: str) -> None:
    """Accepted and silently ignored before: the operator's setting did nothing."""
    from runtime.config import tomllib

    table = next(iter(tomllib.loads(toml)))
    cfg = tmp_path / "f.toml"
    cfg.write_text(toml)
    assert main([*command, "--config", str(cfg)]) == 2
    assert f"[{table}]" in capsys.readouterr().err


def test_key_name_without_keys_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--key-name alone was ignored and the stream went out without CURVE."""
    assert main(["stream", "--scene", "x.tif", "--tiles", "ipc:///tmp/none", "--key-name", "ops"]) == 2
    assert "--keys" in capsys.readouterr().err


def test_a_stream_with_rejected_tiles_says_why_and_exits_1(
        tmp_path: Path, running_runtime: Runtime, ipc_endpoints: dict[str, str],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Tiles larger than the model's 64 px input are rejected (bad_shape): the stream exited 0 with a
    count and no reason."""
    scene = tmp_path / "big.tif"
    with rasterio.open(scene, "w", driver="GTiff", height=128, width=128, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=Affine(2.0, 0, 600000.0, 0, -2.0, 5000000.0)) as dst:
        dst.write(np.full((3, 128, 128), 30, np.uint8))
    assert main(["stream", "--scene", str(scene), "--tiles", ipc_endpoints["tiles"], "--tile-size", "128"]) == 1
    err = capsys.readouterr().err
    assert "1 tiles rejected" in err and "bad_shape" in err
