"""The SAR renderer: the backscatter of a scene's geometry, dark wakes, bright hulls, speckle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from flightsim.synthetic.layout import _raster, _wake, _window
from flightsim.synthetic.model import Scene, _Look
from flightsim.synthetic.noise import _fbm
from flightsim.synthetic.sensor import _quantize
from flightsim.synthetic.writing import rasterize_vessels


def _sar_scene(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    seed: int,
    looks: list[_Look],
    transform: Affine,
    land_alpha: np.ndarray | None,
    shape: tuple[int, int],
    gsd: float,
    dtype: str,
) -> Scene:
    """The SAR picture of a scene's geometry: backscatter, dark wakes, bright hulls, speckle.

    Intensity is built in sigma0-like units, multiplied by Gamma speckle of ``looks`` looks, and
    written as amplitude (its square root) scaled to the counts, in identical bands.
    """
    sc = cfg["sar"]
    sea = rng.uniform(*sc["sea_sigma0"])
    scales = [s / gsd for s in cfg["sea_texture_scales_m"]]
    texture = _fbm(rng, shape, scales, cfg["sea_texture_amplitudes"])
    intensity = sea * np.clip(1.0 + sc["sea_texture"] * texture, 0.2, None)
    if land_alpha is not None:
        ground = rng.uniform(*sc["land_sigma0"]) * np.clip(1.0 + 0.5 * _fbm(rng, shape, scales, [1.0, 0.6, 0.3]), 0.1, None)
        intensity += land_alpha * (ground - intensity)
    # Wakes damp the sea's backscatter; overlapping wakes combine as 1 - (1 - a)(1 - b).
    wakes = np.zeros(shape, np.float32)
    for look in looks:
        wake = _wake(rng, cfg, look, transform, shape, land_alpha) if look.wake_length_m > 0 else None
        if wake is not None:
            (r0, r1, c0, c1), strength = wake
            region = wakes[r0:r1, c0:c1]
            region += strength * (1.0 - region)
    intensity *= 1.0 - sc["wake_darkening"] * np.clip(wakes, 0.0, 1.0)
    for look in looks:
        v = look.vessel
        win = _window(v.polygon.bounds, transform, shape, pad=2)
        r0, r1, c0, c1 = win
        if r1 <= r0 or c1 <= c0:
            continue
        cover = _raster(v.polygon, transform, win, supersample=4)
        sigma = rng.uniform(*sc["ship_sigma0"]) * (0.5 + rng.random(cover.shape).astype(np.float32))
        intensity[r0:r1, c0:c1] += cover * sigma
        # A cross of sidelobes through the brightest scatterer: the radar's point-spread function.
        peak = np.unravel_index(int(np.argmax(cover * sigma)), cover.shape)
        pr, pc = r0 + peak[0], c0 + peak[1]
        level = sc["sidelobe"] * float((cover * sigma).max())
        n = int(sc["sidelobe_length_px"])
        d = np.arange(-n, n + 1)
        fall = level / (1.0 + np.abs(d)) ** 2
        rr, cc = np.clip(pr + d, 0, shape[0] - 1), np.clip(pc + d, 0, shape[1] - 1)
        intensity[rr, pc] += fall
        intensity[pr, cc] += fall
    looks_n = sc["looks"]
    intensity *= rng.gamma(looks_n, 1.0 / looks_n, size=shape).astype(np.float32)
    amplitude = np.sqrt(np.maximum(intensity, 0.0)) / sc["amplitude_full_scale"]
    spec = cfg["dtypes"][dtype]
    counts = _quantize(amplitude[None].astype(np.float32), spec, dtype)
    n_bands = int(sc["bands"])
    vessels = [look.vessel for look in looks]
    return Scene(
        image=np.repeat(counts, n_bands, axis=0),
        mask=rasterize_vessels(vessels, transform, shape),
        vessels=vessels,
        transform=transform,
        crs=CRS.from_user_input(cfg["crs"]),
        bands=["amplitude"] * n_bands,
        seed=int(seed),
        gsd_m=gsd,
        land=(land_alpha >= 0.5).astype(np.uint8) if land_alpha is not None else None,
        cloud=None,
    )
