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

The package: :mod:`.layout` places the hulls (the truth), :mod:`.optical` and :mod:`.sar` render
them, :mod:`.noise` and :mod:`.sensor` are shared by both, :mod:`.writing` saves a scene; this
module draws one scene of a seed from them in a fixed order.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from flightsim.synthetic.layout import _harbour, _place_ships
from flightsim.synthetic.model import MODES, Scene, Vessel, _Look, defaults
from flightsim.synthetic.optical import _cloud, _land, _paint_cloud, _paint_ship, _paint_wake, _sea, _town
from flightsim.synthetic.sar import _sar_scene
from flightsim.synthetic.sensor import _blur3, _quantize
from flightsim.synthetic.writing import rasterize_vessels, write_scene


__all__ = ["MODES", "Scene", "Vessel", "defaults", "generate_scene", "rasterize_vessels", "write_scene"]


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
        if mode == "optical":
            _town(np.random.default_rng([seed, 7003]), cfg, img, land, land_alpha, gsd)
        docked, occupied = _harbour(np.random.default_rng([seed, 7001]), cfg, img, land, land_alpha, transform,
                                    cloud)

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
    _check_kinds(cfg, defaults(), "[synthetic]")
    if min(cfg["length_to_width"]) <= 0:  # a ship's width is its length divided by a draw of it
        raise ValueError(f"[synthetic] length_to_width must be two numbers > 0; got {cfg['length_to_width']!r}")
    n_bands = len(cfg["bands"])
    for key, value in cfg.items():
        if key.endswith("_colour") and len(value) != n_bands:
            raise ValueError(f"{key} has {len(value)} values; it needs one per band of {cfg['bands']}")
    if any(len(c) != n_bands for c in cfg["deck_colours"]):
        raise ValueError(f"every deck_colours entry needs one value per band of {cfg['bands']}")
    block = cfg["geotiff_block_px"]
    if not is_int(block) or block <= 0 or block % 16:  # GDAL refuses it at the write, after the whole drawing
        raise ValueError(f"geotiff_block_px must be a positive multiple of 16 (a GeoTIFF tile side), got {block!r}")
    if len(cfg["ship_types"]) != len(cfg["ship_type_weights"]):
        raise ValueError("ship_types and ship_type_weights must have the same length")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _check_kinds(cfg: dict[str, Any], reference: dict[str, Any], where: str) -> None:
    """Each value of ``cfg`` of the kind of its default in ``reference`` (numbers finite; list items
    of the kind of the default's first item), else a ValueError naming it: a wrong type in a
    ``--config`` was a TypeError or ZeroDivisionError deep in the drawing, after part of it ran."""
    for key, default in reference.items():
        _check_value(f"{where} {key}", default, cfg.get(key, default))


def _check_value(name: str, want: Any, got: Any) -> None:
    if _kind(got) != _kind(want) or (_kind(got) == "a number" and not math.isfinite(got)):
        raise ValueError(f"{name} must be {_kind(want)}{' (finite)' if _kind(want) == 'a number' else ''}, "
                         f"like its default {want!r}; got {got!r}")
    if isinstance(want, dict):
        _check_kinds(got, want, name)
    elif isinstance(want, list) and want:
        for item in got:
            _check_value(f"{name} item", want[0], item)
