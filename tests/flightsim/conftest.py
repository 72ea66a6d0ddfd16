"""Fixtures of the flightsim tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def endpoint() -> Iterator[str]:
    """A fresh ipc endpoint for a stand-in runtime's tile socket (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="fs-", dir="/tmp") as d:
        yield f"ipc://{d}/tiles"
