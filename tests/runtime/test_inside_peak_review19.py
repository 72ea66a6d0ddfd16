"""status()["counters"]["queue_depth"]["tiles_inside_peak"]: the most tiles held inside the runtime
at once since it started. scripts/soak_adversarial.py sampled ``tiles_inside`` now and then, so a
burst between two samples went unseen (review 19); the peak is kept by the runtime itself, on every
tile read, and the soak checks it against ``max_tiles_inside``."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
from affine import Affine

from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from hil.collector import ResultCollector
from hil.runtime_proc import RuntimeProcess
from runtime.client import ControlClient

REPO = Path(__file__).resolve().parents[2]
#: A small bound, so that a burst fills it at once.
BOUND = 6
#: Tiles in the burst: more than the bound, so that the runtime holds exactly BOUND at its fullest.
BURST = 20


def _depth(control: ControlClient) -> dict[str, int]:
    """The runtime's queue depths, as its status reports them now."""
    return control.status()["counters"]["queue_depth"]


def test_a_burst_shows_in_the_peak_after_it_has_drained(tmp_path: Path, brightness_bundle: Path) -> None:
    """A burst with no ground reading fills the runtime to its bound; once a ground reads and
    acknowledges everything, ``tiles_inside`` is back to 0 (a sample now sees nothing) but the peak
    still says the bound was reached, and never more."""
    cfg = tmp_path / "small.toml"
    cfg.write_text(f"[limits]\nmax_tiles_inside = {BOUND}\n")
    proc = RuntimeProcess("CPU", tmp_path / "runtime.log", startup_timeout_s=60, ground_ack=True, config=cfg)
    control = ControlClient(proc.endpoints["control"])
    pixels = np.zeros((3, 64, 64), np.uint8)
    pixels[:, 10:20, 5:45] = 255
    tiles = [Tile("peak", f"peak/{i}", i, pixels, Affine(3, 0, 5e5, 0, -3, 4.2e6), "EPSG:32631", (0, 0, 64, 64))
             for i in range(BURST)]
    streamer = Streamer(proc.endpoints["tiles"], window=32, ack_timeout_s=120)
    sender = threading.Thread(target=streamer.stream, args=(tiles,), daemon=True)
    reader: ResultCollector | None = None
    try:
        control.load_model(brightness_bundle)
        before = _depth(control)
        assert before["tiles_inside_peak"] == 0 and before["max_tiles_inside"] == BOUND
        sender.start()
        deadline = time.monotonic() + 60
        while _depth(control)["tiles_inside"] < BOUND and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _depth(control)["tiles_inside_peak"] == BOUND
        reader = ResultCollector(proc.endpoints["results"], acks=proc.endpoints["acks"])
        assert reader.wait_for(BURST, 120), f"{len(reader.results)} of {BURST} results"
        sender.join(60)
        deadline = time.monotonic() + 30
        while _depth(control)["tiles_inside"] and time.monotonic() < deadline:
            time.sleep(0.05)
        after = _depth(control)
        assert after["tiles_inside"] == 0, after  # a sample taken now misses the burst ...
        assert after["tiles_inside_peak"] == BOUND, after  # ... the peak does not, and never passed the bound
    finally:
        if reader is not None:
            reader.close()
        streamer.close()
        assert proc.close() == 0


def test_the_soak_judges_the_bound_by_the_peak_not_by_samples() -> None:
    """Samples all within the bound no longer pass a run whose peak went above it, nor one whose
    peak is unknown (scripts/soak_adversarial.py, flood_failures)."""
    spec = importlib.util.spec_from_file_location("soak_adversarial_review19", REPO / "scripts" / "soak_adversarial.py")
    assert spec is not None and spec.loader is not None
    adv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adv)
    base = {"max_tiles_inside": 64, "max_inside_seen": 40, "tiles_inside_peak": 64,
            "noise_accepted_before_reader_closed": 64, "noise_tiles_sent": 100, "noise_tiles_accepted": 100}
    assert adv.flood_failures(base) == []
    burst = adv.flood_failures({**base, "tiles_inside_peak": 70})
    assert burst == ["70 tiles were inside the runtime at once, above its bound max_tiles_inside = 64"]
    unknown = adv.flood_failures({k: v for k, v in base.items() if k != "tiles_inside_peak"})
    assert unknown and "tiles_inside_peak" in unknown[0]
