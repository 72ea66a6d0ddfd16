"""A tile is the same tile only with the same ids and the same pixels (adversarial test, issue 13).

Two different scenes saved under the same file name used to share tile ids, and the runtime threw
the second away as resends: no result, and a sender that heard "accepted" for every tile.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flightsim.streamer import Streamer
from flightsim.synthetic import generate_scene, write_scene
from flightsim.tiles import tile_scene
from hil.collector import ResultCollector
from hil.runtime_proc import RuntimeProcess
from runtime.client import ControlClient
from runtime.protocol import MAX_ID_CHARS, TileHeader, TileRejected, decode_tile, encode_tile, tile_key

REPO = Path(__file__).resolve().parents[2]


def test_two_scenes_with_the_same_file_name_both_get_results(tmp_path: Path, runtime_proc: RuntimeProcess) -> None:
    scenes = [write_scene(generate_scene(seed, size=128), tmp_path / name)["scene"]
              for seed, name in ((42, "a"), (7, "b"))]
    assert Path(scenes[0]).name == Path(scenes[1]).name == "scene.tif"
    collector = ResultCollector(runtime_proc.endpoints["results"], acks=runtime_proc.endpoints.get("acks"))
    try:
        logs = []
        for scene in scenes:
            streamer = Streamer(runtime_proc.endpoints["tiles"])
            logs.append(streamer.stream(tile_scene(scene, 64)))
            streamer.close()
        n = len(logs[0].sent_at)  # tiles per scene
        assert n == 4 and collector.wait_for(2 * n, 30), f"{len(collector.results)} of {2 * n} results"
        assert all(not log.duplicates for log in logs)
        ids = [(r["scene_id"], r["tile_id"], r["checksum"]) for _, r, _ in collector.results]
        assert len(set(ids)) == 2 * n and len({(s, t) for s, t, _ in ids}) == n  # same ids, other pixels
        # The same scene again is a resend: acknowledged as a duplicate, and the sender is told.
        out = subprocess.run([sys.executable, "-m", "flightsim", "stream", "--scene", str(scenes[1]),
                              "--tiles", runtime_proc.endpoints["tiles"], "--tile-size", "64"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"duplicates {n}" in out.stdout and "already processed" in out.stderr
        assert ControlClient(runtime_proc.endpoints["control"]).status()["counters"]["duplicates"] == n
    finally:
        collector.close()


def test_ids_too_long_to_echo_are_refused_with_a_reason() -> None:
    import numpy as np

    pixels = np.zeros((1, 4, 4), np.uint8)
    frames = encode_tile(TileHeader("s", "t" * (MAX_ID_CHARS + 1), 0, (1, 4, 4), "uint8", ""), pixels)
    with pytest.raises(TileRejected, match="tile_id is longer") as err:
        decode_tile(frames, 1 << 20, 4, 1 << 16)
    assert err.value.reason.value == "bad_header"
    ok = encode_tile(TileHeader("s", "t" * MAX_ID_CHARS, 0, (1, 4, 4), "uint8", ""), pixels)
    header, _ = decode_tile(ok, 1 << 20, 4, 1 << 16)
    assert tile_key(header) == ("s", "t" * MAX_ID_CHARS, header["checksum"])
