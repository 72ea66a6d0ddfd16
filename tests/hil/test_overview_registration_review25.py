"""hil's overview: an outline drawn on a decimated preview must land where its object is in the picture.

Review (review 25): a preview decimated by ``factor`` was drawn as if each of its pixels covered exactly
``factor`` scene pixels from the scene's corner. Neither reader made it so: a sample in memory (what
the rig previews after ``load()``) took every ``factor``-th pixel, whose content then showed up to
``factor - 1`` pixels right of and below where it is; a GeoTIFF read by rasterio's average resampling
to ``height // factor`` x ``width // factor`` stretches each pixel over ``width / (width // factor)``
scene pixels, so the picture was squeezed towards the corner, by up to ``factor - 1`` at the far edge.
The true outlines, placed by the scene's transform, were right; the image under them was not.

Each test draws one bright square on black, with its outline as the truth, renders the real overview
PNG, and compares where the square's brightness is centred in the picture with where its outline is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from PIL import Image
from shapely.geometry import Polygon, box

from flightsim.sources import open_source
from flightsim.sources.base import Sample
from hil.overview import Panel, draw_overview
from tests.conftest import write_scene_with_truth

TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)


def _square_scene(side: int, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[np.ndarray, Polygon]:
    """(3, side, side) uint8 counts, 200 on ``rows`` x ``cols`` (half-open) and 0 elsewhere, and the
    square's outline in map coordinates (pixel corners through ``TRANSFORM``)."""
    pixels = np.zeros((3, side, side), np.uint8)
    pixels[:, rows[0]:rows[1], cols[0]:cols[1]] = 200
    x0, y0 = TRANSFORM * (cols[0], rows[0])
    x1, y1 = TRANSFORM * (cols[1], rows[1])
    return pixels, box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _offset_in_scene_px(sample: Sample, outline: Polygon, tmp_path: Path, cols: tuple[int, int]) -> np.ndarray:
    """Render the overview of ``sample`` (preview decimated to 50 px a side, picture
    1800 px wide, two panels) and return
    (dx, dy) in scene pixels from the outline's centre to the centre of the square's brightness."""
    rgb, factor = sample.preview(50)
    assert factor > 1  # the case under test: a decimated preview
    panel = Panel(sample.name, rgb, (sample.height, sample.width), sample.transform, [outline], [])
    # A second panel without outlines: a lone panel gets a legend, whose green sample line would count.
    blank = Panel("blank", rgb, (sample.height, sample.width), sample.transform, [], [])
    draw_overview([panel, blank], tmp_path / "overview.png", 1800)
    png = np.asarray(Image.open(tmp_path / "overview.png").convert("RGB")).astype(int)
    r, g, b = png[..., 0], png[..., 1], png[..., 2]
    green = (g > 150) & (r < 120) & (b < 120)
    ys, xs = np.nonzero(green)
    assert xs.size, "no outline drawn"
    line_centre = np.array([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2])
    scale = (xs.max() - xs.min()) / (cols[1] - cols[0])  # picture pixels per scene pixel
    # The square's brightness: grey pixels (the outline's colours left out) inside the outline's box
    # widened by 20 scene pixels, where the figure's white margin cannot reach.
    pad = int(20 * scale)
    grey = (np.abs(r - g) < 20) & (np.abs(g - b) < 20)
    weight = np.where(grey, g, 0).astype(float)
    window = np.zeros_like(weight)
    y0, y1, x0, x1 = ys.min() - pad, ys.max() + pad + 1, xs.min() - pad, xs.max() + pad + 1
    window[y0:y1, x0:x1] = weight[y0:y1, x0:x1]
    yy, xx = np.mgrid[:window.shape[0], :window.shape[1]]
    mass_centre = np.array([(xx * window).sum(), (yy * window).sum()]) / window.sum()
    return (mass_centre - line_centre) / scale


def test_a_sample_in_memory_is_drawn_under_its_outlines(tmp_path: Path) -> None:
    """450 px at 50 px a side: factor 9. The square's edges (82, 262) fall between the old samples
    (every 9th pixel from 0), which showed it from 90 to 270: 8 px off, ``factor - 1``."""
    rows = cols = (82, 262)
    pixels, outline = _square_scene(450, rows, cols)
    sample = Sample("mem", 450, 450, TRANSFORM, None, ["r", "g", "b"], "uint8", image=pixels)
    dx, dy = _offset_in_scene_px(sample, outline, tmp_path, cols)
    assert abs(dx) < 1.5 and abs(dy) < 1.5, (dx, dy)


@pytest.mark.parametrize("load", [False, True], ids=["windows", "loaded"])
def test_a_geotiff_whose_side_is_no_multiple_of_the_factor_is_drawn_under_its_outlines(
        tmp_path: Path, load: bool) -> None:
    """449 px at 50 px a side: factor 9, 49 preview pixels of 449 / 49 = 9.16 scene pixels each, drawn
    as 9: a square centred at 360 showed about 6 px nearer the corner. Loaded (as the rig does with a
    file it cannot window cheaply), the preview is made in memory and must land the same."""
    rows = cols = (300, 420)
    pixels, outline = _square_scene(449, rows, cols)
    write_scene_with_truth(tmp_path, pixels, np.zeros((449, 449), np.uint8), "EPSG:32631", TRANSFORM)
    sample = open_source(str(tmp_path / "scene.tif"))[0]
    if load:
        sample.load()
    dx, dy = _offset_in_scene_px(sample, outline, tmp_path, cols)
    assert abs(dx) < 1.5 and abs(dy) < 1.5, (dx, dy)
