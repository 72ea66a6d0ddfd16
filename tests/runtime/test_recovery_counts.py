"""runtime.recovery.DeviceRecovery on its own: what ``status()`` reports counts each re-run once, and a
failure from a device already replaced neither lengthens the streak nor reopens the new device."""

from __future__ import annotations

import threading
from typing import Any

from runtime.recovery import DeviceRecovery

SETTINGS = {"max_attempts": 5, "backoff_s": 0.0, "max_backoff_s": 0.0, "reopen_after": 1}


class Job:
    attempts = 1


def _recovery(refusals: int = 0) -> tuple[DeviceRecovery, dict[str, Any]]:
    """A recovery whose ``resubmit`` refuses the first ``refusals`` jobs outright, then takes them."""
    seen: dict[str, Any] = {"resubmitted": 0, "reopened": 0, "given_up": 0}
    lock = threading.Lock()

    def resubmit(job: Any) -> None:
        with lock:
            seen["resubmitted"] += 1
            if seen["resubmitted"] <= refusals:
                raise RuntimeError("device refused the request")

    def reopen() -> tuple[str, bool]:
        seen["reopened"] += 1
        return "CPU", False

    def give_up(job: Any, error: BaseException) -> None:
        seen["given_up"] += 1

    return DeviceRecovery(SETTINGS, resubmit, reopen, give_up, lambda *a, **k: None), seen


def test_each_re_run_counts_once_as_a_retry() -> None:
    rec, seen = _recovery()
    try:
        rec.failed(Job(), RuntimeError("inference failed"), stale=True)
        assert rec.settle(10)
        assert seen["resubmitted"] == 1
        assert (rec.counts["errors"], rec.counts["retries"]) == (1, 1)
    finally:
        rec.close()


def test_a_re_run_the_device_refuses_outright_counts_once_and_is_tried_again() -> None:
    rec, seen = _recovery(refusals=1)
    try:
        rec.failed(Job(), RuntimeError("inference failed"), stale=True)
        assert rec.settle(10)
        # two resubmissions (the refused one, then the one taken), each one retry; two errors
        assert seen["resubmitted"] == 2 and seen["given_up"] == 0
        assert (rec.counts["errors"], rec.counts["retries"]) == (2, 2)
    finally:
        rec.close()


def test_failures_from_a_device_already_replaced_do_not_reopen_the_new_one() -> None:
    rec, seen = _recovery()
    try:
        for _ in range(3):
            rec.failed(Job(), RuntimeError("inference failed on the old device"), stale=True)
        assert rec.settle(10)
        assert seen["reopened"] == 0 and rec.counts["reopened"] == 0
        assert rec.report()["consecutive_failures"] == 0
    finally:
        rec.close()
