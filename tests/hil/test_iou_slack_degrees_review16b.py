"""Review: an IoU of exactly 0.5 counts on a grid of small pixels in degrees (``hil.score.match_objects``,
"such a pair counts whatever the georeference"). The coordinates are rounded where they are (longitude
150), before any shift to the origin can help: a 1-pixel-wide vessel of 8 px against its 16 px truth
came out an IoU of 0.4999999983 on 4.2e-6 degree (about 0.4 m) pixels, and missed under a slack of 1e-9."""

import pytest
from shapely.affinity import affine_transform
from shapely.geometry import box

from hil.score import match_objects


@pytest.mark.parametrize("lon, lat, deg, w, h, col, row", [
    (-129.792, 10.0, 6.233117777333717e-06, 1, 7, 3996, 4693),
    (149.472, 10.0, 4.230725077333327e-06, 1, 8, 3088, 6933),
    (-162.105, 10.0, 6.399374497086013e-06, 1, 9, 3039, 6779),
])
def test_half_of_a_truth_matches_at_0_5_on_a_degree_grid(lon: float, lat: float, deg: float, w: int, h: int,
                                                         col: int, row: int) -> None:
    to_map = [deg, 0, 0, -deg, lon, lat]
    pred = affine_transform(box(col, row, col + w, row + h), to_map)
    truth = affine_transform(box(col, row, col + 2 * w, row + h), to_map)
    assert match_objects([pred], [truth], 0.5)["true_positives"] == 1


def test_just_under_0_5_still_misses_on_a_degree_grid() -> None:
    """5 of a 11 px truth (IoU 0.4545) on the same grid: no match; the slack is far under a pixel's step."""
    to_map = [4.2e-6, 0, 0, -4.2e-6, 149.472, 10.0]
    pred = affine_transform(box(3088, 6933, 3093, 6934), to_map)
    truth = affine_transform(box(3088, 6933, 3099, 6934), to_map)
    assert match_objects([pred], [truth], 0.5)["true_positives"] == 0
