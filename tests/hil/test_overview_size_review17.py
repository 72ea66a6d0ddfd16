"""hil's overview: ``[overview] max_side_px`` is checked to be >= 1, but a data set's panels take a
quarter of it each, and 1..3 px gave a preview of 0 px a side: a ZeroDivisionError in the middle of
the stream, after the runtime had started, and the run lost."""

from __future__ import annotations

from pathlib import Path

import hil
from hil.settings import Settings
from tests.conftest import make_brightness_bundle


def test_a_tiny_overview_of_several_samples_does_not_lose_the_run(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "b64", size=64)
    (tmp_path / "h.toml").write_text("[overview]\nmax_side_px = 3\n")
    r = hil.run("synthetic:seeds=1-2,size=64", tmp_path / "b64", tmp_path / "out", device="CPU",
                config=Settings.load(tmp_path / "h.toml")).report
    assert r["tiles_sent"] == r["tiles_processed"] == 2
    assert (tmp_path / "out" / "overview.png").is_file()
