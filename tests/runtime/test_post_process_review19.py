"""Review 19: post-processing in the runtime: a rejection names the model that ran its tile, a bug is one tile's."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

import runtime.results as results_module
from flightsim.streamer import Streamer
from flightsim.tiles import Tile
from runtime import config, protocol
from runtime.client import ControlClient
from runtime.server import Settings
from tests.conftest import make_brightness_bundle, runtime_thread
from tests.runtime.test_post_processing_review21 import _runtime, _stream_three
from tests.runtime.test_server import Ground


def test_a_post_processing_rejection_names_the_model_that_ran_the_tile(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str], tmp_path: Path
) -> None:
    """The tile is inferred by "brightness"; while a vectorise worker holds its output, "other" is
    loaded; then post-processing fails on it. The rejection said "other" (the model serving when it
    was made), though an ok result of the same tile says "brightness" (``job.model``): the ground
    blamed a model that never saw the tile."""
    holding, swapped = threading.Event(), threading.Event()

    def fails_after_the_swap(*args: object, **kwargs: object) -> list:
        holding.set()
        swapped.wait(30)
        raise ValueError("an output post-processing cannot take")

    monkeypatch.setattr(results_module, "vectorize", fails_after_the_swap)
    other = tmp_path / "other"
    make_brightness_bundle(other, name="other")
    cfg = config.defaults()
    cfg["vectorize"] = {**cfg["vectorize"], "batch": 1}
    pixels = np.zeros((3, 64, 64), dtype=np.uint8)
    tile = Tile("s", "s/0", 0, pixels, Affine(3.0, 0.0, 500000.0, 0.0, -3.0, 4200000.0), "EPSG:32631",
                (0, 0, 64, 64))
    with runtime_thread(Settings.from_config(cfg, device="CPU", **ipc_endpoints), brightness_bundle):
        ground = Ground(ipc_endpoints)
        control = ControlClient(ipc_endpoints["control"])
        try:
            streamer = Streamer(ipc_endpoints["tiles"])
            assert streamer.stream([tile]).acks["s/0"]["status"] == "accepted"
            assert holding.wait(20), "the tile never reached post-processing"
            assert control.load_model(other)["ok"]
            swapped.set()
            [result] = ground.results(1)
        finally:
            swapped.set()
            control.close()
    assert result["status"] == "rejected" and result["reason"] == protocol.Reason.INFERENCE_FAILED.value
    assert result["model"]["name"] == "brightness", result["model"]


def test_a_bug_raised_in_post_processing_rejects_the_tile_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """A bug that raises past _post_process's own guard ended the worker thread: the tile (and the
    rest of its batch) waited for Health to take the dead worker for a stuck one, then was run again,
    raised again, and came down "stuck" after two hang timeouts. It is now rejected at once as an
    internal error, counted, and the same worker serves the next tiles."""
    from runtime.server import Runtime

    real_post = Runtime._post_process

    def raises_on_tile_1(self: Runtime, output: object, job: object, t: float) -> tuple[list[bytes], str | None]:
        if job.header["tile_id"] == "s/1":  # type: ignore[attr-defined]
            raise RuntimeError("a bug")
        return real_post(self, output, job, t)  # type: ignore[arg-type]

    monkeypatch.setattr(Runtime, "_post_process", raises_on_tile_1)
    with _runtime(brightness_bundle, ipc_endpoints) as runtime:
        got = _stream_three(ipc_endpoints)
        status = runtime.status()
    assert got["s/1"]["status"] == "rejected" and "internal error" in got["s/1"]["detail"], got["s/1"]
    assert got["s/0"]["status"] == got["s/2"]["status"] == "ok"
    assert status["counters"]["internal_errors"] == 1
    assert status["health"]["stages"]["vectorise-0"]["restarts"] == 0
