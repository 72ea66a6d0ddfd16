"""A stop asked before the runtime's loop starts is kept (review, 2026-12-05): ``serve()`` set its
running flag itself, so a SIGTERM between the "ready" line and the loop (``runtime serve`` installs
its handlers before calling ``serve()``) was overwritten and the runtime served on."""

from __future__ import annotations

import threading
from pathlib import Path

from runtime import config
from runtime.server import Runtime
from runtime.settings import Settings


def test_a_stop_before_serve_ends_the_loop(brightness_bundle: Path, ipc_endpoints: dict[str, str]) -> None:
    runtime = Runtime(Settings.from_config(config.defaults(), device="CPU", **ipc_endpoints), model=brightness_bundle)
    runtime.stop()  # as the SIGTERM handler does
    thread = threading.Thread(target=runtime.serve, daemon=True)
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():
        runtime.stop()
        thread.join(timeout=30)
        raise AssertionError("a stop asked before serve() was lost: the runtime served on")
