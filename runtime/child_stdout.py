"""Reading a child runtime's stdout: its ready line, and everything else it writes there.

Why one reader: the supervisor (runtime/supervisor.py) and the rig (hil/runtime_proc.py) each start
``runtime serve`` with its stdout on a pipe and wait for its ready line. Both must pass over a line
before it (a library's banner: taken for the ready line, it ended the supervisor with "Expecting
value"), and both must read on after it to the pipe's end: a pipe no one reads blocks the writer at
its 64 KiB'th byte, and a native plugin logging there from a runtime thread then stopped the payload
mid-run, starving its watchdog. They differ only in which line is the ready one (and what of it they
keep) and where every other line goes, which are the reader's parameters.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import IO, Any, Callable, TypeVar

T = TypeVar("T")


def json_object(line: bytes) -> dict[str, Any] | None:
    """``line`` as a JSON object, or None if it is not one (not JSON, not UTF-8, or another JSON value)."""
    try:
        said = json.loads(line)
    except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
        return None
    return said if isinstance(said, dict) else None


def start_reader(stream: IO[bytes], ready: Callable[[bytes], T | None], copy: Callable[[bytes], object],
                 name: str) -> tuple[threading.Thread, queue.Queue[T | None]]:
    """Read ``stream`` to its end in a daemon thread (``name``), so that a wait for the ready line can
    time out (a readline cannot) while the child's stdout is drained for as long as it writes.

    Args:
        stream: the child's stdout (a binary pipe).
        ready: what a line says as the ready line, or None if it is not that line; the first line
            with a value is the ready line, and its value is put on the queue returned.
        copy: where every other line goes (before and after the ready line); an OSError or
            ValueError it raises (its file closed, say) is ignored, the lines are then only drained.
        name: the thread's name.

    Returns:
        The thread, and a queue that gets one item: the ready line's value, or None when ``stream``
        ended without one (the child exited, or closed its stdout, before it was ready).
    """
    said: queue.Queue[T | None] = queue.Queue(1)
    thread = threading.Thread(target=_read, args=(stream, ready, copy, said), name=name, daemon=True)
    thread.start()
    return thread, said


def _read(stream: IO[bytes], ready: Callable[[bytes], T | None], copy: Callable[[bytes], object],
          said: queue.Queue[T | None]) -> None:
    """:func:`start_reader`'s thread."""
    found = False
    for line in stream:
        if not found:
            value = ready(line)
            if value is not None:
                found = True
                said.put(value)
                continue
        try:
            copy(line)
        except (OSError, ValueError):  # its file closed (a rig's log at close()): the lines are only drained
            pass
    if not found:
        said.put(None)
