"""Requests collected in groups (runtime.device.OpenVINOAdapter._collect): the collecting thread waits
for the last of what has been submitted, up to ``collect_group``, hands the group's requests back
together and passes its results on in submission order; a group never waits for a tile that has not
been submitted. A real OpenVINO model on the CPU; only ``_result`` is held or failed on purpose."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.bundle import read_bundle
from runtime.device import OpenVINOAdapter
from tests.conftest import make_brightness_bundle


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    out = tmp_path / "brightness"
    make_brightness_bundle(out)
    return out


class Recorded(OpenVINOAdapter):
    """Records which tile each ``_result`` call collects (the value its input is filled with); holds
    the tiles of ``hold`` until their event is set, and fails the tile numbered ``fail``, as a lost
    device does."""

    def __init__(self, *args: Any, fail: int | None = None, hold: tuple[int, ...] = (1,), **kwargs: Any):
        self.entered = {tile: threading.Event() for tile in hold}
        self.release = {tile: threading.Event() for tile in hold}
        self.collected: list[int] = []
        self.completed: list[tuple[int, Any, int]] = []  # (tile, output, requests idle at that moment)
        self.fail = fail
        super().__init__(*args, lambda out, tile: self.completed.append((tile, out, self._idle.qsize())),
                         **kwargs)

    def _result(self, request: Any) -> np.ndarray:
        output = super()._result(request)
        tile = int(request.get_input_tensor(0).data.flat[0])  # readable once the request is done
        self.collected.append(tile)
        if tile in self.entered:
            self.entered[tile].set()
            self.release[tile].wait(10)
        if tile == self.fail:
            raise RuntimeError(f"[ NC_ERROR ] injected on tile {tile}")
        return output


def _held_then_queued(adapter: Recorded, tiles: int) -> None:
    """Tile 1 submitted and held in collection, so that tiles 2..``tiles`` wait behind it; then released."""
    for tile in range(1, tiles + 1):
        adapter.start_async(np.full(adapter.input_shape, tile, np.float32), tile)
        if tile == 1:
            assert adapter.entered[1].wait(10), "tile 1 was never collected"
    adapter.release[1].set()


def test_a_group_is_freed_at_once_and_passed_on_in_order(bundle_dir: Path) -> None:
    adapter = Recorded(read_bundle(bundle_dir), "CPU", infer_requests=8, collect_group=4)
    try:
        _held_then_queued(adapter, 6)
        assert adapter.wait_all(10)
    finally:
        adapter.close()
    # [1] alone (the only one submitted when it was taken), then [2, 3, 4, 5], then [6]
    assert adapter.collected == [1, 2, 3, 4, 5, 6]
    assert [tile for tile, _, _ in adapter.completed] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(out, np.ndarray) for _, out, _ in adapter.completed)
    # The group's four requests are all free before its first result is passed on; only tile 6's is
    # still out (one by one, tile 2's result went on with 3, 4, 5 and 6 still out: 4 idle).
    assert adapter.completed[1][2] == 7


def test_a_failure_in_a_group_is_passed_on_before_a_later_request_that_hangs(bundle_dir: Path) -> None:
    adapter = Recorded(read_bundle(bundle_dir), "CPU", infer_requests=8, collect_group=4, fail=3, hold=(1, 4))
    try:
        _held_then_queued(adapter, 5)  # the group [2, 3, 4, 5]: 3 fails, 4 does not return until released
        assert adapter.entered[4].wait(10)
        # 4 hangs: what came before it, 3's failure included, has been passed on all the same
        assert [tile for tile, _, _ in adapter.completed] == [1, 2, 3]
        assert isinstance(adapter.completed[2][1], RuntimeError) and "tile 3" in str(adapter.completed[2][1])
        adapter.release[4].set()
        assert adapter.wait_all(10)
    finally:
        adapter.close()
    assert [tile for tile, _, _ in adapter.completed] == [1, 2, 3, 4, 5]
    assert all(isinstance(out, np.ndarray) for tile, out, _ in adapter.completed if tile != 3)


def test_one_submission_is_collected_without_waiting_for_its_group_to_fill(bundle_dir: Path) -> None:
    delivered: list[int] = []
    adapter = OpenVINOAdapter(read_bundle(bundle_dir), "CPU", lambda out, tile: delivered.append(tile),
                              collect_group=8)
    try:
        adapter.start_async(np.zeros(adapter.input_shape, np.float32), 1)
        assert adapter.wait_all(5), "a lone request waited for a group that was never submitted"
        assert delivered == [1]
        assert adapter.jobs == 8 + 2 * int(adapter._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    finally:
        adapter.close()


def test_close_waits_for_the_group_being_collected(bundle_dir: Path) -> None:
    adapter = Recorded(read_bundle(bundle_dir), "CPU", infer_requests=8, collect_group=8)
    for tile in range(1, 5):
        adapter.start_async(np.full(adapter.input_shape, tile, np.float32), tile)
        if tile == 1:
            assert adapter.entered[1].wait(10)
    closing = threading.Thread(target=adapter.close, daemon=True)
    closing.start()
    adapter.release[1].set()
    closing.join(10)
    assert not closing.is_alive()
    assert [tile for tile, _, _ in adapter.completed] == [1, 2, 3, 4]


@pytest.mark.parametrize("group", [0, 2.5, True])
def test_a_group_that_is_not_a_count_is_refused(bundle_dir: Path, group: Any) -> None:
    with pytest.raises(ValueError, match=f"collect_group must be an integer >= 1; got {group}"):
        OpenVINOAdapter(read_bundle(bundle_dir), "CPU", lambda *_: None, collect_group=group)
