"""The optical picture: sea, land and cloud radiometry, and vessels with their wakes and shadows.

Radiometry is in a reflectance-like unit (1.0 = full scale); :mod:`.sensor` turns it into counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely.affinity
from affine import Affine

from flightsim.synthetic.layout import _local, _raster, _wake, _window
from flightsim.synthetic.model import _Look
from flightsim.synthetic.noise import _fbm, _quantile, _shift, _smooth_noise, _smoothstep


# Whole-scene arithmetic runs band by band on contiguous 2-D planes: broadcasting a (bands, 1, 1)
# colour against an (H, W) plane can interleave the bands in memory, which makes every later
# operation on the image several times slower.
def _colour(cfg: dict[str, Any], key: str) -> np.ndarray:
    return np.asarray(cfg[key], np.float32)[:, None, None]


def _blend(img: np.ndarray, weight: np.ndarray, target: np.ndarray | list[np.ndarray]) -> None:
    """``img += weight * (target - img)`` per band, in place; ``target`` per band: scalar or plane."""
    for band, goal in zip(img, target):
        band += weight * (goal - band)


def _sea(rng: np.random.Generator, cfg: dict[str, Any], shape: tuple[int, int], gsd: float) -> np.ndarray:
    """The sea in reflectance units, (bands, H, W) float32: textured, with a faint swell."""
    n_bands = len(cfg["bands"])
    j, cj = cfg["sea_brightness_jitter"], cfg["sea_colour_jitter"]
    colour = np.asarray(cfg["sea_colour"], np.float32) * rng.uniform(1 - j, 1 + j)
    colour *= rng.uniform(1 - cj, 1 + cj, n_bands).astype(np.float32)

    scales = [s / gsd for s in cfg["sea_texture_scales_m"]]
    texture = sum(a * _smooth_noise(rng, shape, s) for s, a in zip(scales, cfg["sea_texture_amplitudes"]))

    wavelength = rng.uniform(*cfg["swell_wavelength_m"]) / gsd
    theta = rng.uniform(0.0, math.pi)
    amplitude = rng.uniform(*cfg["swell_amplitude"])
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    cols = np.arange(shape[1], dtype=np.float32)[None, :]
    # A warped phase and a patchy amplitude keep the swell from looking like a printed grating.
    phase = (2 * math.pi / wavelength) * (cols * math.cos(theta) + rows * math.sin(theta))
    phase += 1.5 * _smooth_noise(rng, shape, 4 * wavelength)
    patchy = np.clip(0.5 + 0.5 * _smooth_noise(rng, shape, 6 * wavelength), 0.0, 1.0)
    brightness = 1.0 + texture + amplitude * patchy * np.sin(phase)
    return np.stack([c * brightness for c in colour]).astype(np.float32, copy=False)


def _land(
    rng: np.random.Generator, cfg: dict[str, Any], img: np.ndarray, gsd: float, force: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Paint a coast on ``img`` on some seeds (every seed with ``force``); return the land mask
    (uint8) and land opacity.

    Land is where a ramp towards one side of the scene plus rough noise exceeds a threshold chosen
    for the drawn land fraction, so the coast hugs that side with an irregular shoreline.
    """
    if rng.random() >= cfg["land_probability"] and not force:
        return None, None
    _, h, w = img.shape
    fraction = rng.uniform(*cfg["land_fraction"])
    phi = rng.uniform(0.0, 2 * math.pi)
    c, s = math.cos(phi), math.sin(phi)
    along = np.arange(w, dtype=np.float32)[None, :] * c + np.arange(h, dtype=np.float32)[:, None] * s
    corners = [0.0, (w - 1) * c, (h - 1) * s, (w - 1) * c + (h - 1) * s]
    lo, hi = min(corners), max(corners)
    ramp = (along - lo) / max(hi - lo, 1e-6)
    side = float(max(h, w))
    noise = _fbm(rng, (h, w), [f * side for f in cfg["coast_scales"]], cfg["coast_amplitudes"])
    field = ramp + cfg["coast_roughness"] * noise
    t = _quantile(field, 1.0 - fraction)
    per_px = 1.0 / max(hi - lo, 1.0)  # the ramp's change per pixel: converts widths in px to field units

    land = (field >= t).astype(np.uint8)
    alpha = np.clip(0.5 + (field - t) / (cfg["coast_softness_px"] * per_px), 0.0, 1.0)

    scales = [x / gsd for x in cfg["land_texture_scales_m"]]
    mottle = _fbm(rng, (h, w), scales, cfg["land_texture_amplitudes"])
    mix = np.clip(0.5 + cfg["land_mix_contrast"] * mottle, 0.0, 1.0)
    fine = 1.0 + cfg["land_fine_texture"] * _smooth_noise(rng, (h, w), scales[-1])
    beach = np.clip(1.0 - (field - t) / (cfg["beach_width_px"] * per_px), 0.0, 1.0) * land
    shallow = np.clip(1.0 - (t - field) / (cfg["shallow_width_px"] * per_px), 0.0, 1.0) * (1 - land)
    ground = [
        (veg + (soil - veg) * mix) * fine
        for veg, soil in zip(cfg["vegetation_colour"], cfg["soil_colour"])
    ]
    for plane, sand in zip(ground, cfg["sand_colour"]):
        plane += beach * (sand - plane)
    _blend(img, cfg["shallow_strength"] * shallow, cfg["shallow_colour"])
    _blend(img, alpha, ground)
    return land, alpha.astype(np.float32)


def _cloud(
    rng: np.random.Generator, cfg: dict[str, Any], shape: tuple[int, int], gsd: float
) -> np.ndarray | None:
    """Cloud opacity (H, W) float32 on some seeds: soft-edged blobs covering the drawn fraction."""
    if rng.random() >= cfg["cloud_probability"]:
        return None
    fraction = rng.uniform(*cfg["cloud_fraction"])
    peak = rng.uniform(*cfg["cloud_opacity"])
    field = _fbm(rng, shape, [s / gsd for s in cfg["cloud_scales_m"]], cfg["cloud_amplitudes"])
    t = _quantile(field, 1.0 - fraction)
    # Half the peak on the threshold contour, rising inwards; the cores keep some of the field's
    # texture instead of a flat plateau.
    edge = _smoothstep(0.5 + (field - t) / cfg["cloud_softness"])
    core = np.clip(field - t, 0.0, 1.0)
    return (peak * edge * (0.7 + 0.3 * core)).astype(np.float32)


def _paint_cloud(
    cfg: dict[str, Any],
    img: np.ndarray,
    opacity: np.ndarray,
    shadow_dir: tuple[float, float],
    offset_px: float,
) -> None:
    dr = int(round(-shadow_dir[1] * offset_px))  # map y points up, rows point down
    dc = int(round(shadow_dir[0] * offset_px))
    shade = 1.0 - cfg["cloud_shadow_strength"] * _shift(opacity, dr, dc)
    for band in img:
        band *= shade
    _blend(img, opacity, cfg["cloud_colour"])


def _deck_colours(cfg: dict[str, Any], look: _Look, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per-pixel deck colour (bands, h, w): hull sides, superstructure aft, hatches or a pipe rack."""
    v_len, v_wid = look.vessel.length_m, look.vessel.width_m
    av = np.abs(v)
    colours = np.broadcast_to(look.deck[:, None, None], (len(look.deck),) + u.shape).copy()
    colours[:, av > 0.35 * v_wid] *= cfg["hull_side_darkening"]
    stern = -v_len / 2
    if look.kind == "plain":  # small craft: a cabin amidships
        bridge = (u > -0.15 * v_len) & (u < -0.15 * v_len + 2 * look.bridge_fraction * v_len)
    else:
        bridge = (u > stern + 0.03 * v_len) & (u < stern + (0.03 + look.bridge_fraction) * v_len)
    bridge &= av < 0.4 * v_wid
    colours[:, bridge] = _colour(cfg, "superstructure_colour")[:, :, 0]
    cargo_from = stern + (0.05 + look.bridge_fraction) * v_len
    cargo_to = v_len / 2 - look.bow_m
    if look.kind == "cargo":
        period = look.hatch_period_m
        hatches = (u > cargo_from) & (u < cargo_to) & (av < 0.38 * v_wid)
        hatches &= np.mod(u, period) < 0.75 * period
        colours[:, hatches] = look.accent[:, None]
    elif look.kind == "tanker":
        rack = (u > cargo_from) & (u < cargo_to) & (av < max(0.08 * v_wid, 1.0))
        colours[:, rack] = 0.5 * (colours[:, rack] + _colour(cfg, "superstructure_colour")[:, :, 0])
    return colours


def _paint_ship(
    cfg: dict[str, Any], img: np.ndarray, look: _Look, transform: Affine, shadow_dir: tuple[float, float]
) -> None:
    """Blend the hull over the picture with its coverage of each pixel, after its shadow."""
    v = look.vessel
    lo, hi = cfg["ship_shadow_offset_m"]
    offset = lo + (hi - lo) * min(v.length_m / cfg["ship_length_m"][1], 1.0)  # bigger ships stand taller
    shadow = shapely.affinity.translate(v.polygon, shadow_dir[0] * offset, shadow_dir[1] * offset)
    win = _window(v.polygon.union(shadow).bounds, transform, img.shape[1:], pad=2)
    r0, r1, c0, c1 = win
    cover = _raster(v.polygon, transform, win, supersample=4)
    shade = np.clip(_raster(shadow, transform, win, supersample=4) - cover, 0.0, 1.0)
    cx, cy = look.centre
    u, vv = _local(transform, win, cx, cy, v.heading_deg)
    region = img[:, r0:r1, c0:c1]
    region *= 1.0 - cfg["ship_shadow_strength"] * look.contrast * shade
    region += (look.contrast * cover) * (_deck_colours(cfg, look, u, vv) - region)


def _paint_wake(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    img: np.ndarray,
    look: _Look,
    transform: Affine,
    land_alpha: np.ndarray | None,
) -> None:
    """Foam along the wake: the image blended towards ``foam_colour`` by the wake's strength."""
    wake = _wake(rng, cfg, look, transform, img.shape[1:], land_alpha)
    if wake is not None:
        (r0, r1, c0, c1), strength = wake
        region = img[:, r0:r1, c0:c1]
        region += strength * (_colour(cfg, "foam_colour") - region)


def _town(rng: np.random.Generator, cfg: dict[str, Any], img: np.ndarray, land: np.ndarray,
          land_alpha: np.ndarray, gsd: float) -> None:
    """A port town on the land of a harbour scene: blocks of bright roofs between streets, and
    container yards of coloured stripes, the clutter a real port shows (sen2ships) and what a
    detector trained on open sea calls ships.

    The blocks lie on a grid turned by a random angle; a smooth field decides which part of the
    land is built up. Painted in place, before the ships, and never part of the truth."""
    tc = cfg["harbour"]["town"]
    if not land.any():
        return
    h, w = land.shape
    theta = rng.uniform(0.0, math.pi / 2)
    rows = np.arange(h, dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    u = cols * math.cos(theta) + rows * math.sin(theta)
    v = -cols * math.sin(theta) + rows * math.cos(theta)
    block = max(rng.uniform(*tc["block_m"]) / gsd, 2.0)
    street = max(tc["street_m"] / gsd, 0.6)
    iu, iv = np.floor(u / block).astype(np.int64), np.floor(v / block).astype(np.int64)
    iu -= iu.min()
    iv -= iv.min()
    # A block is roofed where the built-up field says so; streets stay ground.
    built_field = _smooth_noise(rng, (h, w), tc["extent_m"] / gsd)
    cut = float(np.quantile(built_field[land > 0], 1.0 - rng.uniform(*tc["built_fraction"])))
    built = (land > 0) & (built_field >= cut)
    on_street = (np.mod(u, block) < street) | (np.mod(v, block) < street)
    roofs = np.asarray(tc["roof_colours"], np.float32)
    yards = np.asarray(tc["container_colours"], np.float32)
    n_cells = (int(iu.max()) + 1, int(iv.max()) + 1)
    kind = rng.choice(len(roofs), size=n_cells)
    gain = rng.uniform(*tc["roof_brightness"], size=n_cells).astype(np.float32)
    occupied = rng.random(n_cells) < tc["roof_density"]
    yard = rng.random(n_cells) < tc["yard_probability"]
    cell_kind, cell_gain = kind[iu, iv], gain[iu, iv]
    roofed = built & ~on_street & occupied[iu, iv]
    # Container yards: a block of thin stripes, one colour per stripe, as stacked boxes look at 10 m.
    stripe = np.floor(v / max(tc["container_row_m"] / gsd, 1.0)).astype(np.int64)
    stripe_kind = rng.choice(len(yards), size=int(stripe.max() - stripe.min()) + 1)[stripe - stripe.min()]
    in_yard = roofed & yard[iu, iv]
    weight = land_alpha * roofed
    for b, band in enumerate(img):
        target = np.where(in_yard, yards[stripe_kind, b], roofs[cell_kind, b] * cell_gain)
        band += weight * (target - band)
