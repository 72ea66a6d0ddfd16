"""Requests collected in groups (runtime.device.OpenVINOAdapter._collect) on either Python API: the
collecting thread waits on a raw infer request (``InferRequest.wait``) before collecting its group, a
call the 2022.3 API must have too. The outputs are the synchronous ones, in submission order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "default"


def test_a_group_collected_gives_each_tile_its_own_output_in_order() -> None:
    from runtime.bundle import read_bundle
    from runtime.device import open_device

    delivered: list[tuple[int, np.ndarray]] = []
    adapter = open_device(read_bundle(MODEL), "CPU", lambda out, tile: delivered.append((tile, out)),
                          infer_requests=8, collect_group=4)
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=adapter.input_shape).astype(np.float32) for _ in range(10)]
    try:
        for tile, batch in enumerate(batches):
            adapter.start_async(batch, tile)
        assert adapter.wait_all(60)
        expected = [adapter.infer(batch) for batch in batches]
    finally:
        adapter.close()
    assert [tile for tile, _ in delivered] == list(range(10))
    for (_, out), want in zip(delivered, expected):
        assert isinstance(out, np.ndarray)
        np.testing.assert_array_equal(out, want)
