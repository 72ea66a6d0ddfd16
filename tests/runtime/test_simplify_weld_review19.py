"""``[vectorize] simplify_px`` against the ground's merge: from half a pixel, two vessels a pixel apart
can come down touching and be merged into one; a serving runtime refuses such a value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from runtime.config import load_defaults
from runtime.merge import merge_detections
from runtime.server import Runtime
from runtime.settings import SERVING_SIMPLIFY_LIMIT_PX, Settings, check_serving_simplify
from runtime.vectorize import vectorize

REPO = Path(__file__).resolve().parents[2]


def _c_and_a_pixel_in_its_bay() -> np.ndarray:
    """A crescent (8-connected) and, one pixel inside its bay, a vessel of its own."""
    prob = np.zeros((12, 12))
    for r, c in ((5, 3), (6, 2), (7, 2), (8, 2), (9, 3), (7, 4)):
        prob[r, c] = 0.9
    return prob


def test_simplified_one_by_one_two_vessels_a_pixel_apart_are_merged_into_one() -> None:
    """Why the limit: Douglas-Peucker with a pixel's tolerance fills the crescent's bay up to the other
    vessel, and the ground's merge joins them; at the limit's side of half a pixel they stay two."""
    prob = _c_and_a_pixel_in_its_bay()
    for simplify_px, vessels in ((0.0, 2), (0.49, 2), (1.0, 1)):
        features = vectorize(prob, 0.5, Affine.identity(), None, min_area_px=1, simplify_px=simplify_px)
        assert len(features) == 2
        assert len(merge_detections(features, None, tolerance=0.01)) == vessels, simplify_px


@pytest.mark.parametrize("simplify_px", [SERVING_SIMPLIFY_LIMIT_PX, 1.0])
def test_a_serving_runtime_refuses_a_simplify_px_that_can_weld_vessels(tmp_path: Path, simplify_px: float) -> None:
    """Refused before any socket is bound, saying why; ``runtime infer`` (Settings alone) still takes it,
    since it simplifies after its merge."""
    config = load_defaults(REPO / "runtime/defaults.toml")
    config["vectorize"]["simplify_px"] = simplify_px
    ends = {name: f"ipc://{tmp_path}/{name}" for name in ("tiles", "results", "control", "telemetry", "acks")}
    settings = Settings.from_config(config, **ends)  # what runtime infer reads: taken
    try:
        runtime = Runtime(settings)
    except ValueError as exc:
        assert "simplify_px" in str(exc) and "as one" in str(exc) and "runtime infer" in str(exc)
    else:
        runtime.close()
        pytest.fail(f"a serving runtime took simplify_px = {simplify_px}")


def test_below_the_limit_is_taken() -> None:
    assert check_serving_simplify(0.0) == 0.0
    assert check_serving_simplify(0.49) == 0.49
