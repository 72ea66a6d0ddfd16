"""hil's runtime child (``hil.runtime_proc.RuntimeProcess``) has its stdout read to the end, not only
to its ready line: a pipe no one reads blocks the writer at its 64 KiB'th byte, and a native plugin
logging to stdout from a runtime thread (a stick's XLink messages) then stopped the payload mid-run.
Here every tile the runtime takes writes 3 KB there (a sitecustomize the child imports)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from hil.collector import ResultCollector
from hil.runtime_proc import RuntimeProcess
from runtime.client import ControlClient

CHATTY = '''
import os, sys, threading, time

def _patch():
    while True:
        server = sys.modules.get("runtime.server")
        if server is not None and hasattr(server, "Runtime"):
            break
        time.sleep(0.005)
    on_tile = server.Runtime._on_tile

    def chatty(self, frames):
        os.write(1, b"plugin chatter " * 200 + b"\\n")
        return on_tile(self, frames)

    server.Runtime._on_tile = chatty

threading.Thread(target=_patch, daemon=True).start()
'''


def test_a_runtime_writing_much_on_stdout_serves_on(tmp_path: Path, brightness_bundle: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CHATTY)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    proc = RuntimeProcess("CPU", tmp_path / "runtime.log", startup_timeout_s=60)
    try:
        ControlClient(proc.endpoints["control"]).load_model(brightness_bundle)
        pixels = np.full((3, 64, 64), 20, np.uint8)
        tiles = [Tile("chatty", f"t{i}", i, pixels, Affine.identity(), None, (0, 0, 64, 64), ["b"] * 3)
                 for i in range(60)]  # 60 x 3 KB: far past a 64 KiB pipe
        collector = ResultCollector(proc.endpoints["results"], acks=proc.endpoints.get("acks"))
        streamer = Streamer(proc.endpoints["tiles"], window=8)
        try:
            streamer.stream(tiles)
            assert collector.wait_for(len(tiles), 30), f"{len(collector.results)} of {len(tiles)} results"
        finally:
            collector.close()
            streamer.close()
        assert b"plugin chatter" in (tmp_path / "runtime.log").read_bytes()  # kept in the log, not lost
    finally:
        proc.close()
