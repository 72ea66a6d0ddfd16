"""Where things are: vessel hulls placed on free water, how each looks, and harbours with piers.

Geometry in map coordinates (the scene CRS): the truth polygons are made here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from affine import Affine
from rasterio.features import rasterize
from shapely.geometry import Polygon

from flightsim.synthetic.model import Vessel, Window, _Look


def _hull(cx: float, cy: float, length: float, width: float, heading_deg: float, bow: float) -> Polygon:
    """A rectangle with a pointed bow (5 points) centred on (cx, cy), bow towards ``heading_deg``."""
    h = math.radians(heading_deg)
    fx, fy = math.sin(h), math.cos(h)  # forward, in map x (east) and y (north)
    sx, sy = fy, -fx  # starboard
    hl, hw = length / 2, width / 2
    local = [(-hl, -hw), (hl - bow, -hw), (hl, 0.0), (hl - bow, hw), (-hl, hw)]
    return Polygon([(cx + u * fx + v * sx, cy + u * fy + v * sy) for u, v in local])


def _window(
    bounds: tuple[float, float, float, float], transform: Affine, shape: tuple[int, int], pad: int
) -> Window:
    """The pixel window covering map ``bounds`` plus ``pad`` pixels, clipped to the scene."""
    minx, miny, maxx, maxy = bounds
    gsd, x0, y0 = transform.a, transform.c, transform.f
    r0 = max(math.floor((y0 - maxy) / gsd) - pad, 0)
    r1 = min(math.ceil((y0 - miny) / gsd) + pad, shape[0])
    c0 = max(math.floor((minx - x0) / gsd) - pad, 0)
    c1 = min(math.ceil((maxx - x0) / gsd) + pad, shape[1])
    return r0, max(r1, r0), c0, max(c1, c0)


def _raster(geom: Polygon, transform: Affine, win: Window, supersample: int = 1) -> np.ndarray:
    """``geom`` rasterized on a window; with ``supersample`` > 1, the fraction of each pixel covered."""
    r0, r1, c0, c1 = win
    s = supersample
    t = transform * Affine.translation(c0, r0) * Affine.scale(1.0 / s)
    out_shape = ((r1 - r0) * s, (c1 - c0) * s)
    out = rasterize([(geom, 1)], out_shape=out_shape, transform=t, fill=0, dtype=np.uint8)
    if s == 1:
        return out
    return out.reshape(r1 - r0, s, c1 - c0, s).mean(axis=(1, 3), dtype=np.float32)


def _local(
    transform: Affine, win: Window, cx: float, cy: float, heading_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres of a window in a frame at (cx, cy): u forward along the heading, v to starboard."""
    r0, r1, c0, c1 = win
    gsd = transform.a
    dx = (transform.c + (np.arange(c0, c1, dtype=np.float64) + 0.5) * gsd - cx)[None, :]
    dy = (transform.f - (np.arange(r0, r1, dtype=np.float64) + 0.5) * gsd - cy)[:, None]
    h = math.radians(heading_deg)
    fx, fy = math.sin(h), math.cos(h)
    return (dx * fx + dy * fy).astype(np.float32), (dx * fy - dy * fx).astype(np.float32)


def _place_ships(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    n_ships: int,
    transform: Affine,
    shape: tuple[int, int],
    land: np.ndarray | None,
    cloud: np.ndarray | None,
    occupied: np.ndarray | None = None,
) -> list[_Look]:
    """Place up to ``n_ships`` hulls on open water, clear of land, thick cloud, each other and the
    ``occupied`` pixels (moored ships)."""
    gsd = transform.a
    side_m = min(shape) * gsd
    margin = cfg["edge_margin_px"] * gsd
    lmin, lmax = cfg["ship_length_m"]
    # A ship longer than the scene can hold is never drawn, rather than retried until attempts run out.
    lmax = min(lmax, 0.9 * (side_m - 2 * margin))
    if lmax < lmin:
        return []
    # Nor are ships tried that could never cover min_vessel_px: at a coarse gsd every ship was tried
    # placement_attempts times, each one rasterised, and generation ran for minutes to place none.
    # The bound: a convex shape of area A and perimeter P holds at most A + P/2 + 1 pixel centres
    # (Nosarzewska), here for the largest hull's box, in pixels.
    length_px, width_px = lmax / gsd, lmax / min(cfg["length_to_width"]) / gsd
    if length_px * width_px + (length_px + width_px) + 1 < cfg["min_vessel_px"]:
        return []
    occupied = np.zeros(shape, dtype=bool) if occupied is None else occupied
    looks: list[_Look] = []
    for _ in range(n_ships):
        for _attempt in range(int(cfg["placement_attempts"])):
            length = math.exp(rng.uniform(math.log(lmin), math.log(lmax)))
            width = length / rng.uniform(*cfg["length_to_width"])
            heading = rng.uniform(0.0, 360.0)
            reach = math.hypot(length / 2, width / 2) + margin
            if 2 * reach >= side_m:
                continue
            cx = transform.c + rng.uniform(reach, shape[1] * gsd - reach)
            cy = transform.f - rng.uniform(reach, shape[0] * gsd - reach)
            bow = length * rng.uniform(*cfg["bow_fraction"])
            hull = _hull(cx, cy, length, width, heading, bow)
            keepout = hull.buffer(cfg["clearance_px"] * gsd)
            win = _window(keepout.bounds, transform, shape, pad=1)
            r0, r1, c0, c1 = win
            near = _raster(keepout, transform, win).astype(bool)
            if occupied[r0:r1, c0:c1][near].any() or (land is not None and land[r0:r1, c0:c1][near].any()):
                continue
            inside = _raster(hull, transform, win).astype(bool)
            if inside.sum() < cfg["min_vessel_px"]:
                continue
            if cloud is not None and cloud[r0:r1, c0:c1][inside].max() > cfg["max_cloud_opacity_under_ship"]:
                continue
            occupied[r0:r1, c0:c1] |= near
            vessel = Vessel(hull, float(length), float(width), float(heading))
            looks.append(_draw_look(rng, cfg, vessel, (cx, cy), bow))
            break
    return looks


def _draw_look(
    rng: np.random.Generator, cfg: dict[str, Any], vessel: Vessel, centre: tuple[float, float], bow: float
) -> _Look:
    palette = np.asarray(cfg["deck_colours"], np.float32)
    weights = np.asarray(cfg["ship_type_weights"], float)
    kind = str(cfg["ship_types"][rng.choice(len(weights), p=weights / weights.sum())])
    deck, accent = palette[rng.choice(len(palette), 2, replace=False)]
    dim = rng.random() < cfg["dim_probability"]
    contrast = rng.uniform(*(cfg["dim_contrast"] if dim else cfg["contrast"]))
    wake_length, wake_intensity = 0.0, 0.0
    if rng.random() < cfg["moving_probability"]:
        speed = rng.uniform(*cfg["speed_factor"])
        wake_length = vessel.length_m * rng.uniform(*cfg["wake_length_factor"]) * speed
        wake_length = min(wake_length, cfg["wake_max_length_m"])
        wake_intensity = rng.uniform(*cfg["wake_intensity"]) * speed
    return _Look(
        vessel=vessel,
        centre=centre,
        bow_m=bow,
        kind=kind,
        deck=deck * rng.uniform(*cfg["deck_brightness"]),
        accent=accent,
        bridge_fraction=rng.uniform(*cfg["bridge_fraction"]),
        hatch_period_m=rng.uniform(*cfg["hatch_period_m"]),
        contrast=contrast,
        wake_length_m=wake_length,
        wake_intensity=wake_intensity,
    )


def _harbour(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    img: np.ndarray,
    land: np.ndarray,
    land_alpha: np.ndarray,
    transform: Affine,
    cloud: np.ndarray | None = None,
) -> tuple[list[_Look], np.ndarray]:
    """Piers out from the coast, painted and added to the land; ships moored alongside them.

    A pier starts on a coast pixel and runs out to sea, away from the land's centre of mass; ships
    lie parallel to it on both sides, a small gap of water between hull and pier. Returns the
    moored ships and the occupancy (hulls plus clearance) that free ships must keep out of. A berth
    under cloud thicker than ``max_cloud_opacity_under_ship`` stays empty, as free water does in
    :func:`_place_ships`: a hull nobody could see must not be truth.
    """
    hc = cfg["harbour"]
    gsd = transform.a
    shape = land.shape
    occupied = np.zeros(shape, dtype=bool)
    rows, cols = np.nonzero(land)
    if rows.size == 0:
        return [], occupied
    sea_dir = np.array([shape[1] / 2 - cols.mean(), -(shape[0] / 2 - rows.mean())])  # map x, y
    if np.hypot(*sea_dir) < 1e-6:
        sea_dir = np.array([1.0, 0.0])
    fx, fy = sea_dir / np.hypot(*sea_dir)
    heading = math.degrees(math.atan2(fx, fy)) % 360.0
    # Coast pixels: land with sea to the right or below; spread the piers along the coast.
    coast = np.zeros(shape, dtype=bool)
    coast[:, :-1] |= (land[:, :-1] == 1) & (land[:, 1:] == 0)
    coast[:-1, :] |= (land[:-1, :] == 1) & (land[1:, :] == 0)
    coast[:, 1:] |= (land[:, 1:] == 1) & (land[:, :-1] == 0)
    cr, cc = np.nonzero(coast)
    if cr.size == 0:
        return [], occupied
    along = cc * fy - (-cr) * fx  # position across the sea direction
    order = np.argsort(along)
    n_piers = int(rng.integers(hc["piers"][0], hc["piers"][1] + 1))
    pier_colour = np.asarray(hc["pier_colour"], np.float32)
    looks: list[_Look] = []
    for k in range(n_piers):
        pick = order[int((k + rng.uniform(0.25, 0.75)) / n_piers * (len(order) - 1))]
        x0, y0 = transform * (cc[pick] + 0.5, cr[pick] + 0.5)
        length = rng.uniform(*hc["pier_length_m"])
        width = rng.uniform(*hc["pier_width_m"])
        cx, cy = x0 + fx * (length / 2 - 2 * width), y0 + fy * (length / 2 - 2 * width)
        pier = _hull(cx, cy, length, width, heading, 0.0)
        win = _window(pier.bounds, transform, shape, pad=1)
        r0, r1, c0, c1 = win
        if r1 <= r0 or c1 <= c0:
            continue
        cover = _raster(pier, transform, win, supersample=4)
        region = img[:, r0:r1, c0:c1]
        region += cover * (pier_colour[:, None, None] - region)
        land[r0:r1, c0:c1] |= (cover >= 0.5).astype(np.uint8)
        land_alpha[r0:r1, c0:c1] = np.maximum(land_alpha[r0:r1, c0:c1], cover)
        # Berths on both sides, from the outer end back towards the coast.
        for side in (-1.0, 1.0):
            u = length / 2 - 2 * width  # from the pier's centre, along the sea direction
            while u > -length / 2 + 2 * width:
                ship_len = math.exp(rng.uniform(*np.log(hc["moored_length_m"])))
                ship_len = min(ship_len, u + length / 2 - 2 * width)
                if ship_len < cfg["ship_length_m"][0]:
                    break
                ship_w = ship_len / rng.uniform(*cfg["length_to_width"])
                off = width / 2 + rng.uniform(*hc["berth_gap_m"]) + ship_w / 2
                mid = u - ship_len / 2
                sx = cx + fx * mid + side * fy * off
                sy = cy + fy * mid - side * fx * off
                ship_heading = (heading + (0.0 if rng.random() < 0.5 else 180.0)) % 360.0
                bow = ship_len * rng.uniform(*cfg["bow_fraction"])
                hull = _hull(sx, sy, ship_len, ship_w, ship_heading, bow)
                u -= ship_len + rng.uniform(5.0, 30.0)
                hwin = _window(hull.buffer(cfg["clearance_px"] * gsd).bounds, transform, shape, pad=1)
                hr0, hr1, hc0, hc1 = hwin
                if hr1 <= hr0 or hc1 <= hc0:
                    continue
                inside = _raster(hull, transform, hwin).astype(bool)
                near = _raster(hull.buffer(cfg["clearance_px"] * gsd), transform, hwin).astype(bool)
                edge = cfg["edge_margin_px"]
                if (inside.sum() < cfg["min_vessel_px"] or land[hr0:hr1, hc0:hc1][inside].any()
                        or occupied[hr0:hr1, hc0:hc1][near].any() or hr0 < edge or hc0 < edge
                        or hr1 > shape[0] - edge or hc1 > shape[1] - edge):
                    continue
                if cloud is not None and cloud[hr0:hr1, hc0:hc1][inside].max() > cfg["max_cloud_opacity_under_ship"]:
                    continue
                occupied[hr0:hr1, hc0:hc1] |= near
                vessel = Vessel(hull, float(ship_len), float(ship_w), float(ship_heading))
                look = _draw_look(rng, cfg, vessel, (sx, sy), bow)
                look.wake_length_m = look.wake_intensity = 0.0  # moored
                looks.append(look)
    return looks, occupied


def _wake(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    look: _Look,
    transform: Affine,
    shape: tuple[int, int],
    land_alpha: np.ndarray | None,
) -> tuple[Window, np.ndarray] | None:
    """Where a moving vessel's wake is and how strong, in [0, 1]: a turbulent centre trail and
    fainter Kelvin arms behind the stern, fading with distance, none on land. Returns the window
    it covers and the strength over it (None when it is off the scene). Each renderer shows it its
    own way: foam in the optical picture, damped backscatter in SAR."""
    v = look.vessel
    length, width = look.wake_length_m, v.width_m
    h = math.radians(v.heading_deg)
    fx, fy = math.sin(h), math.cos(h)
    cx, cy = look.centre
    sx0, sy0 = cx - fx * v.length_m / 2, cy - fy * v.length_m / 2  # stern centre
    tan_k = math.tan(math.radians(cfg["kelvin_half_angle_deg"]))
    half = length * tan_k + 2 * width
    ex, ey = sx0 - fx * length, sy0 - fy * length
    xs = [sx0 + fy * width, sx0 - fy * width, ex + fy * half, ex - fy * half]
    ys = [sy0 - fx * width, sy0 + fx * width, ey - fx * half, ey + fx * half]
    win = _window((min(xs), min(ys), max(xs), max(ys)), transform, shape, pad=2)
    r0, r1, c0, c1 = win
    if r1 <= r0 or c1 <= c0:
        return None
    u, lat = _local(transform, win, sx0, sy0, v.heading_deg)
    d = np.maximum(-u, 0.0)  # metres behind the stern
    turb_w = 0.5 * width + cfg["wake_spread"] * d
    turbulent = np.exp(-((lat / turb_w) ** 2) - d / (cfg["wake_decay"] * length))
    arm_w = 0.3 * width + 0.5 * cfg["wake_spread"] * d
    arms = np.exp(-(((np.abs(lat) - d * tan_k) / arm_w) ** 2) - d / (cfg["kelvin_decay"] * length))
    strength = turbulent + cfg["kelvin_relative_intensity"] * arms
    strength *= (u < 0) * np.clip((length - d) / (0.2 * length), 0.0, 1.0)
    texture = 1.0 - cfg["wake_texture"] * rng.random(u.shape, dtype=np.float32)
    strength *= look.wake_intensity * texture
    if land_alpha is not None:
        strength *= 1.0 - land_alpha[r0:r1, c0:c1]
    return win, strength
