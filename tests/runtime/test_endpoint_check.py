"""An endpoint given without its transport (``127.0.0.1:5550`` for ``tcp://127.0.0.1:5550``) is a clear
error naming the option and an example, in every command that takes one, before ZeroMQ answers it
with a bare "Invalid argument" (found by a new-user walkthrough)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flightsim.__main__ import main as flightsim_main
from runtime.config import check_endpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("endpoint", ["127.0.0.1:5550", "localhost", "tcp://", "inproc://tiles", 5550])
def test_what_is_no_endpoint_is_refused_with_an_example(endpoint: object) -> None:
    with pytest.raises(ValueError, match=r"--tiles .* is not a ZeroMQ endpoint; give TRANSPORT://ADDRESS .* "
                                         r"e\.g\. tcp://127\.0\.0\.1:5550"):
        check_endpoint("--tiles", endpoint, "tcp://127.0.0.1:5550")


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5550", "tcp://*:5550", "ipc:///tmp/tiles"])
def test_endpoints_with_a_transport_pass(endpoint: str) -> None:
    check_endpoint("--tiles", endpoint, "tcp://127.0.0.1:5550")


def test_serve_names_the_endpoint_setting_and_its_default() -> None:
    proc = subprocess.run([sys.executable, "-m", "runtime", "serve", "--device", "CPU", "--results", "127.0.0.1:6001"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "error: [endpoints] results (--results) '127.0.0.1:6001' is not a ZeroMQ endpoint" in proc.stderr
    assert "e.g. tcp://127.0.0.1:5551" in proc.stderr


def test_stream_names_its_tiles_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert flightsim_main(["stream", "--scene", "x.tif", "--tiles", "127.0.0.1:5550"]) == 2
    assert "error: --tiles '127.0.0.1:5550' is not a ZeroMQ endpoint" in capsys.readouterr().err
