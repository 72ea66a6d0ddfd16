"""A tile that recovery gives up on because nothing serving can run it (``CannotRun``: a model
uplinked since takes another input) reports the runs it had, not one more.

Found by the review of device loss (review 23): ``_handle`` counted the re-run before trying it, and
a re-run refused with ``CannotRun`` never ran, yet the ``inference_failed`` event said "after 2
attempts" and the tile's rejection "the device failed it 2 times" for a tile the device ran once.
The recovery is the real one; its ``resubmit`` refuses as the runtime's does for such a tile.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from runtime.recovery import CannotRun, DeviceRecovery


def test_a_tile_that_cannot_run_again_is_given_up_with_the_runs_it_had() -> None:
    given_up: list[tuple[Any, BaseException, int]] = []

    def resubmit(job: Any) -> None:
        raise CannotRun("model other now serves and cannot take this tile")

    def give_up(job: Any, error: BaseException) -> None:
        given_up.append((job, error, job.attempts))  # as the runtime reads it: in the event and the result

    def reopen() -> tuple[str, bool]:
        raise AssertionError("no reopen expected")

    recovery = DeviceRecovery({"max_attempts": 4, "backoff_s": 0.0, "max_backoff_s": 0.0, "reopen_after": 100},
                              resubmit, reopen, give_up, lambda *args, **kwargs: None)
    try:
        job = SimpleNamespace(attempts=1)
        recovery.failed(job, RuntimeError("[ NC_ERROR ] injected"))
        assert recovery.settle(10)
    finally:
        recovery.close()
    assert [(type(error), attempts) for _, error, attempts in given_up] == [(CannotRun, 1)]
    assert recovery.counts["retries"] == 0 and recovery.counts["given_up"] == 1
