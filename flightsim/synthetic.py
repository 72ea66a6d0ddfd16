"""Seedable synthetic maritime scenes with exact ground truth.

Training, the hardware-in-the-loop rig and the tests need an unlimited supply of labelled scenes
whose truth is exact, so this module draws them: a textured sea, sometimes a coast and cloud,
vessels with wakes. The vessel outlines are built in map coordinates and the mask is rasterized from
them, so truth polygons and truth mask agree by construction. Wakes, shadows, land and cloud are
clutter: they are drawn, never labelled.

Radiometry is computed in a reflectance-like unit (1.0 = full scale) and quantized to sensor counts
at the end, so uint8 and uint16 scenes of one seed show the same picture. Every default lives in the
``[synthetic]`` table of ``flightsim/defaults.toml``. Only ``numpy.random.default_rng(seed)`` draws,
in a fixed order, so one seed gives one scene on every machine.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely.affinity
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from shapely.geometry import Polygon, mapping

from runtime.config import load_defaults

__all__ = ["MODES", "Scene", "Vessel", "defaults", "generate_scene", "rasterize_vessels", "write_scene"]

#: Imaging modes of the generator.
MODES = ("optical", "sar")

Window = tuple[int, int, int, int]  # row0, row1, col0, col1 (half-open), clipped to the scene


@dataclass
class Vessel:
    """One vessel of the truth: its outline in map coordinates (the scene CRS, metres) and size."""

    polygon: Polygon
    length_m: float
    width_m: float
    heading_deg: float  # direction of travel, degrees clockwise from grid north, [0, 360)


@dataclass
class Scene:
    """A synthetic scene: sensor counts, the truth mask and polygons, and the georeference.

    ``land`` (1 on land) and ``cloud`` (opacity 0..1) are extras for checks and analysis; they come
    last, with defaults, so that code building a Scene by position keeps working.
    """

    image: np.ndarray  # (bands, H, W) uint8 or uint16 counts
    mask: np.ndarray  # (H, W) uint8, 1 where a vessel is
    vessels: list[Vessel]
    transform: Affine  # pixel -> map, north-up, pixel size gsd_m
    crs: CRS
    bands: list[str]
    seed: int
    gsd_m: float
    land: np.ndarray | None = None  # (H, W) uint8, 1 on land
    cloud: np.ndarray | None = None  # (H, W) float32 cloud opacity


@dataclass
class _Look:
    """How a placed vessel is drawn; kept apart from Vessel, which is the truth that others read."""

    vessel: Vessel
    centre: tuple[float, float]  # map x, y of the hull's midpoint (not its centroid: the bow is pointed)
    bow_m: float
    kind: str
    deck: np.ndarray
    accent: np.ndarray
    bridge_fraction: float
    hatch_period_m: float
    contrast: float
    wake_length_m: float  # 0 for a stationary vessel
    wake_intensity: float


def defaults() -> dict[str, Any]:
    """The generator's defaults: the ``[synthetic]`` table of ``flightsim/defaults.toml``."""
    return load_defaults(Path(__file__).with_name("defaults.toml"))["synthetic"]


def generate_scene(
    seed: int,
    size: int | None = None,
    gsd_m: float | None = None,
    n_ships: int | None = None,
    dtype: str | None = None,
    mode: str = "optical",
    harbour: bool = False,
    config: dict[str, Any] | None = None,
) -> Scene:
    """Draw the scene of ``seed``: a ``size`` x ``size`` pixel square at ``gsd_m`` metres per pixel.

    ``mode`` is ``"optical"`` (RGB reflectance, the default) or ``"sar"`` (amplitude with speckle,
    no cloud, bright hulls with sidelobes, dark wakes; written as identical bands, as SAR tiles in
    the public sets are). ``harbour=True`` puts a coast in every scene, with piers and ships moored
    alongside them (in the truth). Neither changes the default scene of a seed: their draws come
    from a second generator seeded by (seed, tag).

    ``None`` means the default from ``defaults.toml`` (or from ``config``, the ``[synthetic]`` table of a
    merged flightsim configuration: ``flightsim generate --config``). ``n_ships`` is the number of vessels to place;
    by default it is drawn from a density per km^2, so it scales with the scene's area. A vessel that
    finds no free water (land, thick cloud, other hulls, a scene too small) is left out, so
    ``len(scene.vessels) <= n_ships``.

    Raises:
        ValueError: for a negative or non-integer seed, ``size <= 0``, ``gsd_m <= 0``,
            ``n_ships < 0``, or a dtype other than those in ``defaults.toml``.
    """
    cfg = config or defaults()
    size = cfg["size"] if size is None else size
    gsd = float(cfg["gsd_m"] if gsd_m is None else gsd_m)
    dtype = cfg["dtype"] if dtype is None else dtype
    _validate(cfg, seed, size, gsd, n_ships, dtype)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {list(MODES)}")

    rng = np.random.default_rng(seed)
    shape = (size, size)
    # Snap the origin to whole pixels so that scenes of one gsd share a pixel lattice.
    x0 = math.floor(rng.uniform(*cfg["origin_x_m"]) / gsd) * gsd
    y0 = math.floor(rng.uniform(*cfg["origin_y_m"]) / gsd) * gsd
    transform = Affine(gsd, 0.0, x0, 0.0, -gsd, y0)
    sun_az = math.radians(rng.uniform(0.0, 360.0))
    shadow_dir = (-math.sin(sun_az), -math.cos(sun_az))  # map x, y: shadows fall away from the sun

    img = _sea(rng, cfg, shape, gsd)
    land, land_alpha = _land(rng, cfg, img, gsd, force=harbour)
    cloud = _cloud(rng, cfg, shape, gsd)
    if mode == "sar":
        cloud = None  # radar sees through cloud
    docked: list[_Look] = []
    occupied = None
    if harbour:
        assert land is not None and land_alpha is not None
        docked, occupied = _harbour(np.random.default_rng([seed, 7001]), cfg, img, land, land_alpha, transform)

    if n_ships is None:
        area_km2 = (size * gsd / 1000.0) ** 2
        expected = rng.uniform(*cfg["ships_per_km2"]) * area_km2
        n_ships = max(int(cfg["min_ships"]), int(expected + rng.random()))  # stochastic rounding
    looks = docked + _place_ships(rng, cfg, n_ships, transform, shape, land, cloud, occupied)
    if mode == "sar":
        return _sar_scene(np.random.default_rng([seed, 7002]), cfg, seed, looks, transform, land_alpha, shape, gsd, dtype)

    for look in looks:
        if look.wake_length_m > 0:
            _paint_wake(rng, cfg, img, look, transform, land_alpha)
    for look in looks:
        _paint_ship(cfg, img, look, transform, shadow_dir)
    if cloud is not None:
        _paint_cloud(cfg, img, cloud, shadow_dir, rng.uniform(*cfg["cloud_shadow_offset_m"]) / gsd)
    _blur3(img, rng.uniform(*cfg["psf_neighbour_weight"]))
    img += rng.uniform(*cfg["sensor_noise"]) * rng.standard_normal(img.shape, dtype=np.float32)

    vessels = [look.vessel for look in looks]
    return Scene(
        image=_quantize(img, cfg["dtypes"][dtype], dtype),
        mask=rasterize_vessels(vessels, transform, shape),
        vessels=vessels,
        transform=transform,
        crs=CRS.from_user_input(cfg["crs"]),
        bands=list(cfg["bands"]),
        seed=int(seed),
        gsd_m=gsd,
        land=land,
        cloud=cloud,
    )


def rasterize_vessels(vessels: list[Vessel], transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """The truth mask of ``vessels``: pixels whose centre lies in a hull (``all_touched=False``)."""
    if not vessels:
        return np.zeros(shape, np.uint8)
    shapes = [(v.polygon, 1) for v in vessels]
    return rasterize(shapes, out_shape=shape, transform=transform, fill=0, all_touched=False, dtype=np.uint8)


def write_scene(scene: Scene, out_dir: str | Path, config: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``scene.tif``, ``truth_mask.tif`` (GeoTIFFs on one grid) and ``truth.geojson``.

    The GeoJSON carries the scene CRS in a top-level ``crs`` member because its coordinates are
    projected metres, not the WGS 84 degrees that RFC 7946 assumes. ``config``: the ``[synthetic]``
    table to take the GeoTIFF layout from (default ``defaults.toml``'s).
    """
    cfg = config or defaults()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"scene": out / "scene.tif", "mask": out / "truth_mask.tif", "vessels": out / "truth.geojson"}
    n_bands, height, width = scene.image.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "height": height, "width": width, "crs": scene.crs,
        "transform": scene.transform, "compress": cfg["geotiff_compress"],
    }
    block = int(cfg["geotiff_block_px"])
    if height >= block and width >= block:  # tiles make the tiler's windowed reads cheap
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    tags = {"generator": "flightsim.synthetic", "seed": str(scene.seed), "gsd_m": str(scene.gsd_m)}

    with rasterio.open(paths["scene"], "w", count=n_bands, dtype=scene.image.dtype.name, **profile) as dst:
        dst.write(scene.image)
        for i, name in enumerate(scene.bands, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**tags)
    with rasterio.open(paths["mask"], "w", count=1, dtype="uint8", **profile) as dst:
        dst.write(scene.mask.astype(np.uint8), 1)
        dst.set_band_description(1, "vessel")
        dst.update_tags(**tags)

    features = [
        {
            "type": "Feature",
            "id": i,
            "geometry": mapping(v.polygon),
            "properties": {"length_m": v.length_m, "width_m": v.width_m, "heading_deg": v.heading_deg},
        }
        for i, v in enumerate(scene.vessels)
    ]
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": scene.crs.to_string()}},
        "features": features,
    }
    paths["vessels"].write_text(json.dumps(collection, indent=1))
    return paths


# --- Validation -------------------------------------------------------------------------------


def _validate(cfg: dict[str, Any], seed: int, size: int, gsd: float, n_ships: int | None, dtype: str) -> None:
    def is_int(x: object) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not is_int(size) or size <= 0:
        raise ValueError(f"size must be a positive integer number of pixels, got {size!r}")
    if not math.isfinite(gsd) or gsd <= 0:
        raise ValueError(f"gsd_m must be a positive number of metres, got {gsd!r}")
    if n_ships is not None and (not is_int(n_ships) or n_ships < 0):
        raise ValueError(f"n_ships must be a non-negative integer or None (the default), got {n_ships!r}")
    if dtype not in cfg["dtypes"]:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {sorted(cfg['dtypes'])}")
    n_bands = len(cfg["bands"])
    for key, value in cfg.items():
        if key.endswith("_colour") and len(value) != n_bands:
            raise ValueError(f"{key} has {len(value)} values; it needs one per band of {cfg['bands']}")
    if any(len(c) != n_bands for c in cfg["deck_colours"]):
        raise ValueError(f"every deck_colours entry needs one value per band of {cfg['bands']}")
    if len(cfg["ship_types"]) != len(cfg["ship_type_weights"]):
        raise ValueError("ship_types and ship_type_weights must have the same length")


# --- Noise ------------------------------------------------------------------------------------


def _bspline(t: np.ndarray) -> list[np.ndarray]:
    """Uniform cubic B-spline weights: smooth (C2) interpolation without the grid look of bilinear."""
    t2, t3 = t * t, t * t * t
    return [(1 - t) ** 3 / 6, (3 * t3 - 6 * t2 + 4) / 6, (-3 * t3 + 3 * t2 + 3 * t + 1) / 6, t3 / 6]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-variance noise correlated over about ``scale_px`` pixels.

    White noise on a coarse grid, interpolated by cubic B-spline: a few multiply-adds per pixel,
    far cheaper than filtering full-resolution noise, and numpy-only.
    """
    h, w = shape
    cell = max(float(scale_px), 1.0)
    grid = rng.standard_normal((int(h / cell) + 4, int(w / cell) + 4), dtype=np.float32)

    def axis(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
        pos = (np.arange(n, dtype=np.float32) + 0.5) / cell
        i = np.floor(pos).astype(np.intp)
        return i, _bspline((pos - i).astype(np.float32))

    ri, rw = axis(h)
    ci, cw = axis(w)
    # Columns first, on the small grid; the full-size pass then gathers whole rows, which stay
    # contiguous (gathering columns of a full-size array yields a slow, transposed layout).
    cols = sum(wk[None, :] * grid[:, ci + k] for k, wk in enumerate(cw))
    out = np.ascontiguousarray(rw[0][:, None] * cols[ri])
    for k in range(1, 4):
        out += rw[k][:, None] * cols[ri + k]
    sample = out[:: max(1, h // 128), :: max(1, w // 128)]  # a sample fixes the scale as well as all
    out -= sample.mean()
    out /= sample.std() + 1e-6
    return out


def _fbm(
    rng: np.random.Generator, shape: tuple[int, int], scales_px: list[float], amps: list[float]
) -> np.ndarray:
    """A sum of smooth-noise octaves, renormalised to unit variance."""
    out = sum(a * _smooth_noise(rng, shape, s) for s, a in zip(scales_px, amps))
    return out / (math.sqrt(sum(a * a for a in amps)) + 1e-12)


def _quantile(field: np.ndarray, q: float) -> float:
    # A strided sample is plenty for a threshold and keeps this off the critical path at 1024 px.
    step = max(1, min(field.shape) // 256)
    return float(np.quantile(field[::step, ::step], q))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# --- Background: sea, land, cloud -------------------------------------------------------------


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


def _shift(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``out[r, c] = a[r - dr, c - dc]``, with indices clamped to the edge.

    Clamping rather than zero fill: a shadow cast from beyond the scene continues smoothly instead
    of stopping at a straight line that no real cloud shadow has.
    """
    h, w = a.shape
    rows = np.clip(np.arange(h) - dr, 0, h - 1)
    cols = np.clip(np.arange(w) - dc, 0, w - 1)
    return a[np.ix_(rows, cols)]


# --- Vessels ----------------------------------------------------------------------------------


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
    gsd = transform.a
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
    """A turbulent centre trail and fainter Kelvin arms behind the stern, fading with distance."""
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
    win = _window((min(xs), min(ys), max(xs), max(ys)), transform, img.shape[1:], pad=2)
    r0, r1, c0, c1 = win
    if r1 <= r0 or c1 <= c0:
        return
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
    region = img[:, r0:r1, c0:c1]
    region += strength * (_colour(cfg, "foam_colour") - region)


# --- Harbours ----------------------------------------------------------------------------------


def _harbour(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    img: np.ndarray,
    land: np.ndarray,
    land_alpha: np.ndarray,
    transform: Affine,
) -> tuple[list[_Look], np.ndarray]:
    """Piers out from the coast, painted and added to the land; ships moored alongside them.

    A pier starts on a coast pixel and runs out to sea, away from the land's centre of mass; ships
    lie parallel to it on both sides, a small gap of water between hull and pier. Returns the
    moored ships and the occupancy (hulls plus clearance) that free ships must keep out of.
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
                occupied[hr0:hr1, hc0:hc1] |= near
                vessel = Vessel(hull, float(ship_len), float(ship_w), float(ship_heading))
                look = _draw_look(rng, cfg, vessel, (sx, sy), bow)
                look.wake_length_m = look.wake_intensity = 0.0  # moored
                looks.append(look)
    return looks, occupied


# --- SAR ----------------------------------------------------------------------------------------


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
    dark_cfg = {**cfg, "foam_colour": [1.0] * len(cfg["bands"])}
    wakes = np.zeros((len(cfg["bands"]),) + shape, np.float32)
    for look in looks:
        if look.wake_length_m > 0:
            _paint_wake(rng, dark_cfg, wakes, look, transform, land_alpha)
    intensity *= 1.0 - sc["wake_darkening"] * np.clip(wakes[0], 0.0, 1.0)
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


# --- Sensor -----------------------------------------------------------------------------------


def _blur3(img: np.ndarray, w: float) -> None:
    """Separable 3-tap point-spread function [w, 1-2w, w], edges replicated, in place."""
    for axis in (1, 2):
        src = img.copy()
        img *= 1.0 - 2.0 * w
        lead = [slice(None)] * 3
        lag = [slice(None)] * 3
        lead[axis], lag[axis] = slice(1, None), slice(None, -1)
        img[tuple(lead)] += w * src[tuple(lag)]
        img[tuple(lag)] += w * src[tuple(lead)]
        first = [slice(None)] * 3
        last = [slice(None)] * 3
        first[axis], last[axis] = slice(0, 1), slice(-1, None)
        img[tuple(first)] += w * src[tuple(first)]
        img[tuple(last)] += w * src[tuple(last)]


def _quantize(img: np.ndarray, spec: dict[str, Any], dtype: str) -> np.ndarray:
    """Reflectance to counts, saturating at the sensor's maximum count."""
    counts = np.rint(img * np.float32(spec["full_scale"]))
    np.clip(counts, 0, spec["max_count"], out=counts)
    return counts.astype(dtype)
