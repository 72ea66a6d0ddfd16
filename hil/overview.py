"""The overview picture of a run: each scene with its true outlines (green) and detections (red).

One panel per scene, up to ``[overview] max_panels``; a data set's run shows its first scenes in a
grid, a single scene fills the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen on a rig or in CI
import matplotlib.pyplot as plt
import numpy as np
from affine import Affine
from shapely.geometry.base import BaseGeometry


@dataclass
class Panel:
    """One scene of the picture: an RGB preview (h, w, 3) in [0, 1] of a scene ``size`` = (height, width)
    pixels large, which it covers corner to corner (``Sample.preview``).

    The picture is drawn in scene pixels: the preview stretched over (0, width) x (0, height), the
    outlines through ``~transform``. A decimation factor would not do for the stretch: ``size`` is seldom
    a multiple of it, and a preview's pixels each cover ``width / w`` scene pixels, not the factor."""

    name: str
    rgb: np.ndarray
    size: tuple[int, int]
    transform: Affine
    truth: list[BaseGeometry]
    predicted: list[BaseGeometry]


def draw_overview(panels: list[Panel], out: Path, max_side_px: int, title: str = "") -> None:
    """Write the picture of ``panels`` to ``out`` (PNG), at most about ``max_side_px`` on a side."""
    n = max(1, len(panels))
    ncols = math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    inches = max_side_px / 100
    fig, axes = plt.subplots(nrows, ncols, figsize=(inches, inches * nrows / ncols), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, p in zip(axes.flat, panels):
        h, w = p.size
        ax.imshow(p.rgb, extent=(0, w, h, 0))
        inv = ~p.transform
        for geoms, colour, label in ((p.truth, "lime", "truth"), (p.predicted, "red", "predicted")):
            first = True
            for geom in geoms:
                for poly in getattr(geom, "geoms", [geom]):
                    if not hasattr(poly, "exterior"):
                        continue
                    xs, ys = poly.exterior.xy
                    cols, rows = zip(*(inv * (x, y) for x, y in zip(xs, ys)))
                    ax.plot(cols, rows, color=colour, linewidth=0.8 if n == 1 else 0.5,
                            label=label if first else None)
                    first = False
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_title(f"{p.name}: {len(p.truth)} true, {len(p.predicted)} detected", fontsize=9 if n == 1 else 6)
    if panels and n == 1:
        axes.flat[0].legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
