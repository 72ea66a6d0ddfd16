"""Link drops after the sender: resending recovers every tile (issue: reliability)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hil
from tests.conftest import make_brightness_bundle


@pytest.mark.slow
def test_tiles_lost_in_transit_are_resent_and_none_is_lost(tmp_path: Path) -> None:
    make_brightness_bundle(tmp_path / "b", size=128)
    r = hil.run("synthetic:size=512", tmp_path / "b", tmp_path / "out", device="CPU", seed=3,
                faults="link_loss=0.3,seed=1").report
    injected = r["faults"]["link_loss"]["injected"]
    assert injected >= 2
    assert r["tiles_lost"] == 0 and r["tiles_processed"] == r["tiles_sent"]
    assert r["faults"]["link_loss"]["outcomes"] == {"processed": injected}


def test_link_loss_without_resend_is_refused(tmp_path: Path) -> None:
    from flightsim.faults import FaultInjector
    from flightsim.streamer import Streamer
    from flightsim.tiles import Tile

    import numpy as np
    from affine import Affine

    injector = FaultInjector(Streamer("ipc:///tmp/nobody-here"), "link_loss=1")
    tile = Tile("s", "s/0", 0, np.zeros((3, 8, 8), np.uint8), Affine.identity(), None, (0, 0, 8, 8))
    with pytest.raises(ValueError, match="resend"):
        injector.stream([tile])
