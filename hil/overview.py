"""The overview picture of a run: the scene, true outlines and predicted ones."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen on a rig or in CI
import matplotlib.pyplot as plt
import numpy as np
import rasterio
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry


def draw_overview(scene: Path, predicted: list[BaseGeometry],
                  truth: list[BaseGeometry], out: Path, max_side_px: int) -> None:
    with rasterio.open(scene) as src:
        factor = max(1, int(np.ceil(max(src.height, src.width) / max_side_px)))
        shape = (src.count, src.height // factor, src.width // factor)
        image = src.read(out_shape=shape, resampling=Resampling.average).astype(np.float32)
        inv = ~src.transform
    image = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    lo, hi = np.percentile(image, (1, 99.5))
    rgb = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1).transpose(1, 2, 0)
    fig, ax = plt.subplots(figsize=(10, 10 * rgb.shape[0] / rgb.shape[1]), dpi=100)
    ax.imshow(rgb, extent=(0, shape[2] * factor, shape[1] * factor, 0))
    for geoms, colour, label in ((truth, "lime", "truth"), (predicted, "red", "predicted")):
        first = True
        for geom in geoms:
            for poly in getattr(geom, "geoms", [geom]):
                xs, ys = poly.exterior.xy
                cols, rows = zip(*(inv @ (x, y) for x, y in zip(xs, ys)))
                ax.plot(cols, rows, color=colour, linewidth=0.8, label=label if first else None)
                first = False
    ax.set_axis_off()
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{scene.name}: {len(truth)} true vessels (green), {len(predicted)} detected (red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
