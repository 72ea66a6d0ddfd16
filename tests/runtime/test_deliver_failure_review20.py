"""Review 20: a bug raised while the runtime delivers a tile's result (``Runtime._vectorised``, the vectorise
pool's ``deliver``) rejects that tile as an internal error, and the same worker serves the next tiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime import protocol
from runtime.server import Runtime
from tests.conftest import drained_events, event_subscriber
from tests.runtime.test_post_processing_review21 import _runtime, _stream_three


def test_a_bug_raised_delivering_a_result_rejects_the_tile_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch, brightness_bundle: Path, ipc_endpoints: dict[str, str]
) -> None:
    """The exception ended the worker thread: the tile was never answered, nor was any later one (with
    one worker), and Health saw nothing until the tile looked stuck for the hang timeout."""
    real_vectorised = Runtime._vectorised
    raised: list[str] = []

    def raises_once_on_tile_1(self: Runtime, item: Any, result: Any) -> None:
        if item[1].header["tile_id"] == "s/1" and not raised:
            raised.append("s/1")
            raise RuntimeError("a bug in delivery")
        real_vectorised(self, item, result)

    monkeypatch.setattr(Runtime, "_vectorised", raises_once_on_tile_1)
    with _runtime(brightness_bundle, ipc_endpoints) as runtime, event_subscriber(ipc_endpoints["telemetry"]) as events:
        got = _stream_three(ipc_endpoints)
        status = runtime.status()
        bugs = drained_events(events, "internal_error")
    assert raised == ["s/1"]
    assert got["s/1"]["status"] == "rejected", got["s/1"]
    assert got["s/1"]["reason"] == protocol.Reason.INFERENCE_FAILED.value
    assert "delivering its result: internal error RuntimeError('a bug in delivery')" in got["s/1"]["detail"]
    assert got["s/0"]["status"] == got["s/2"]["status"] == "ok"
    counters = status["counters"]
    assert counters["internal_errors"] == 1
    assert counters["tiles_ok"] == 2 and counters["tiles_rejected"] == 1, "one tile counted twice"
    assert status["health"]["stages"]["vectorise-0"]["restarts"] == 0
    assert [(e["handler"], e["tile_id"]) for e in bugs] == [("_vectorised", "s/1")], bugs
