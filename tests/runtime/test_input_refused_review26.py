"""Review 26: OpenVINO refusing a re-run's input is the tile's fault, not the device's.

Recovery (runtime/recovery.py) re-runs a tile whose request failed. When the re-run's request was
refused by OpenVINO because of the tile's own input (the tensor's element type or shape does not fit
the compiled model: OpenVINO's ``ParameterMismatch`` / "Can't set the input tensor" complaint), that
refusal was counted as a failure of the device: a ``device_error``, one more in the failure streak,
and at ``reopen_after`` a reopen (a recompile; on a stick, seconds of it) of a device that worked.
Only ``CannotRun`` (a model loaded since cannot take the tile, or a bug preparing it again) was told
apart, and only before the request reached the device.

Now such a refusal rejects the tile at once (``inference_failed``, its detail saying the device
refused the tile's input, and why), counted once with one internal error for the tile; the streak is
not lengthened, and the device is not reopened. The same holds for a refusal that comes back from a
request's wait, or on a tile's first run.

The device is a real OpenVINO model on the CPU: the adapter hands OpenVINO a float64 tensor for one
tile's re-run, and the real infer request raises OpenVINO's own exception for it. The runtime, its
sockets, its recovery and its model loads are the real ones.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from flightsim.streamer import Streamer
from runtime.bundle import read_bundle
from runtime.device import OpenVINOAdapter, open_device
from runtime.recovery import DeviceRecovery, InputRefused
from tests.conftest import drained_events, event_subscriber, runtime_thread
from tests.runtime.test_device_loss_review import _one_result, _settings, first_device_as
from tests.runtime.test_post_processing_review21 import _until
from tests.runtime.test_server import Ground, _tile

#: The tile whose re-run OpenVINO refuses.
REFUSED = "scene/1"


class RefusesOneTileOnItsReRun(OpenVINOAdapter):
    """The model runs for real. The first submission of :data:`REFUSED` fails as on a lost stick (a
    device failure: it is re-run); its re-runs are handed to OpenVINO as a float64 tensor, which the
    real infer request refuses with OpenVINO's own exception. Every other tile runs as it is."""

    def start_async(self, batch: np.ndarray, userdata: Any) -> None:
        if userdata.header.get("tile_id") == REFUSED:
            if userdata.attempts == 1:
                raise RuntimeError("[ NC_ERROR ] injected: device lost at submission")
            batch = batch.astype(np.float64)  # not the model's element type: OpenVINO refuses it
        super().start_async(batch, userdata)


def test_a_re_run_whose_input_openvino_refuses_is_rejected_and_the_device_not_reopened(
        brightness_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``reopen_after = 2``: tile 1's first run fails (a device failure, streak 1); OpenVINO refuses its
    re-run's input. Before: a second ``device_error`` (streak 2), a reopen of the device, and the tile
    run a third time on the reopened one. Now: the tile is rejected with why, one internal error, the
    streak stays at 1, nothing is reopened, and the device serves the next tile ok."""
    opened = first_device_as(RefusesOneTileOnItsReRun, monkeypatch)
    settings = _settings(backoff_s=0.05, max_backoff_s=0.05, reopen_after=2, max_attempts=3)
    with runtime_thread(settings, brightness_bundle) as runtime, \
            event_subscriber(runtime.endpoints["telemetry"]) as events:
        ground = Ground(runtime.endpoints)
        streamer = Streamer(runtime.endpoints["tiles"], window=2)
        try:
            assert streamer.stream([_tile(1)]).acks[REFUSED]["status"] == "accepted"
            refused = _one_result(ground, timeout_s=15.0)
            assert _until(lambda: runtime.status()["counters"]["in_flight"] == 0, 5.0)
            during = runtime.status()
            assert streamer.stream([_tile(2)]).acks["scene/2"]["status"] == "accepted"
            after = _one_result(ground, timeout_s=15.0)
            status = runtime.status()
            device_errors = drained_events(events, "device_error")
        finally:
            streamer.close()
    assert (refused["tile_id"], refused["status"], refused["reason"]) == (REFUSED, "rejected", "inference_failed")
    assert "the device refused the tile's input" in refused["detail"], refused["detail"]
    assert "the device failed it" not in refused["detail"], refused["detail"]
    recovery = during["device_recovery"]
    assert recovery["errors"] == 1 and recovery["consecutive_failures"] == 1, recovery
    assert recovery["reopened"] == 0 and recovery["replaced"] == 0 and recovery["given_up"] == 1, recovery
    assert opened == ["brightness"], opened  # no reopen
    assert [e for e in device_errors if "NC_ERROR" not in e["detail"]] == [], device_errors
    assert len(device_errors) == 1, device_errors
    assert (after["tile_id"], after["status"]) == ("scene/2", "ok"), after
    counters = status["counters"]
    assert counters["tiles_rejected"] == 1 and counters["tiles_ok"] == 1, counters
    assert counters["internal_errors"] == 1 and counters["in_flight"] == 0, counters
    assert status["device_recovery"]["state"] == "ok" and status["device_recovery"]["reopened"] == 0


def test_the_adapter_tells_openvinos_complaint_about_an_input_from_a_device_failure(
        brightness_bundle: Path) -> None:
    """What recovery asks of the adapter, on OpenVINO's real exceptions: a tensor of another element
    type or shape is refused (with OpenVINO's reason), a lost device's error is not; and a batch that
    does not fit the model's input can never run, whatever the device says."""
    adapter = open_device(read_bundle(brightness_bundle), "CPU", lambda output, job: None)
    try:
        good = np.zeros(adapter.input_shape, dtype=adapter.input_dtype)
        raised = []
        for wrong in (good.astype(np.float64), np.zeros((1, *adapter.input_shape[1:-1], 7), adapter.input_dtype)):
            with pytest.raises(Exception) as info:
                adapter.start_async(wrong, None)
            raised.append((wrong, info.value))
        assert adapter.wait_all(5.0)
        lost = RuntimeError("[ NC_ERROR ] injected: device lost")
        for wrong, error in raised:
            # refused whether judged against the batch submitted or against the good one (the adapter
            # itself may have handed OpenVINO another tensor than the runtime's)
            for batch in (wrong, good):
                said = adapter.refused_input(batch, error)
                assert said is not None and "NC_ERROR" not in said, (batch.dtype, batch.shape, error)
        assert adapter.refused_input(good, lost) is None
        assert adapter.refused_input(None, lost) is None
        assert adapter.refused_input(good[..., :-1], lost) is not None  # it cannot run: the tile's
    finally:
        adapter.close()


def _recovery(refused_input: Any, given_up: list[tuple[Any, BaseException]], reopens: list[str],
              resubmit: Any) -> DeviceRecovery:
    """A real recovery that reopens after one failure (each reopen noted in ``reopens``)."""
    def reopen() -> tuple[str, bool]:
        reopens.append("CPU")
        return "CPU", False

    return DeviceRecovery({"max_attempts": 4, "backoff_s": 0.0, "max_backoff_s": 0.0, "reopen_after": 1},
                          resubmit, reopen, lambda job, error: given_up.append((job, error)),
                          lambda *args, **kwargs: None, refused_input=refused_input)


def test_a_refusal_of_a_tiles_input_from_a_wait_is_not_a_device_failure() -> None:
    """A refusal can come back through ``failed`` too (from a request's wait, or a first run's
    submission): the job is given up at once as an :class:`InputRefused`, not re-run, and nothing is
    counted against the device (with ``reopen_after = 1`` a device failure would reopen it)."""
    given_up: list[tuple[Any, BaseException]] = []
    reopens: list[str] = []
    resubmitted = threading.Event()
    recovery = _recovery(lambda job, error: "ParameterMismatch: injected" if job.bad else None, given_up,
                         reopens, resubmit=lambda job: resubmitted.set())
    try:
        job = SimpleNamespace(attempts=1, bad=True)
        recovery.failed(job, RuntimeError("Exception from src/...: ParameterMismatch: injected"))
        assert recovery.settle(10)
        report = recovery.report()
    finally:
        recovery.close()
    assert [(j, type(e)) for j, e in given_up] == [(job, InputRefused)], given_up
    assert "ParameterMismatch: injected" in str(given_up[0][1]), given_up
    assert not resubmitted.is_set() and reopens == []
    assert report["consecutive_failures"] == 0 and report["errors"] == 0 and report["state"] == "ok", report
    assert report["given_up"] == 1 and report["retries"] == 0 and job.attempts == 1, report


def test_a_refusal_check_that_raises_leaves_the_error_the_devices() -> None:
    """A bug in the check must not hide a device failure: the error counts against the device as before."""
    given_up: list[tuple[Any, BaseException]] = []
    reopens: list[str] = []

    def broken(job: Any, error: BaseException) -> str | None:
        raise ValueError("a bug in the check")

    recovery = _recovery(broken, given_up, reopens, resubmit=lambda job: None)
    try:
        recovery.failed(SimpleNamespace(attempts=3), RuntimeError("[ NC_ERROR ] injected"))
        deadline = time.monotonic() + 10
        while recovery.report()["retries"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        report = recovery.report()
    finally:
        recovery.close()
    assert report["errors"] == 1 and report["retries"] == 1 and given_up == [], report
    assert reopens == ["CPU"] and report["reopened"] == 1, (reopens, report)  # a device failure, reopened
