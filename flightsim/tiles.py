"""Tiles as the payload sees them, and the tiler that cuts them out of a scene (a source sample or a file)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine

from runtime.protocol import TileHeader, encode_tile

if TYPE_CHECKING:
    from flightsim.sources import Sample


@dataclass
class Tile:
    """One tile: sensor counts (bands, h, w) and where they are on the Earth and in the scene."""

    scene_id: str
    tile_id: str
    seq: int
    pixels: np.ndarray
    transform: Affine
    crs: str | None
    window: tuple[int, int, int, int]  # row_off, col_off, height, width
    bands: list[str] = field(default_factory=list)
    time: float = 0.0
    ready_s: float = 0.0  # seconds after the stream starts at which the payload has this tile (timing)
    owned: tuple[int, int, int, int] | None = None  # the part of window this tile answers for (overlap)
    modality: str | None = None  # "optical" or "sar" when known: the runtime checks it against its model
    # A pace, not an availability (timing's rate mode): after a stall, a later ready_s stays that far
    # behind the send of the tiles before it instead of going out at once with them.
    keeps_pace: bool = False

    def frames(self, want_mask: bool = False, want_done: bool = True) -> list[bytes]:
        """The wire frames of this tile (runtime.protocol); ``want_done=False`` for a sender that
        never resends and so need not hear "done"."""
        header = TileHeader(
            scene_id=self.scene_id, tile_id=self.tile_id, seq=self.seq, shape=self.pixels.shape,
            dtype=self.pixels.dtype.name, checksum="", transform=tuple(self.transform)[:6],
            crs=self.crs, bands=list(self.bands), time=self.time or time.time(),
            window=self.window, want_mask=want_mask, modality=self.modality, want_done=want_done,
        )
        return encode_tile(header, self.pixels)


def tile_grid(height: int, width: int, size: int, overlap: int = 0) -> list[tuple[int, int, int, int]]:
    """Windows (row, col, h, w) covering a height x width image in size x size tiles.

    Without ``overlap`` the tiles abut and the last row and column are short. With it, neighbours
    share ``overlap`` pixels and the last tile is pulled back to end at the image's edge, so every
    tile is full size (unless the image is smaller than one tile).
    """
    if size <= 0:
        raise ValueError(f"tile size must be positive, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be in [0, {size}) pixels for {size} px tiles, got {overlap}")
    rows, cols = _starts(height, size, overlap), _starts(width, size, overlap)
    return [(row, col, min(size, height - row), min(size, width - col)) for row in rows for col in cols]


def _starts(n: int, size: int, overlap: int) -> list[int]:
    if overlap == 0 or n <= size:
        return list(range(0, n, size))
    step = size - overlap
    starts = list(range(0, n - size + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def owned_windows(windows: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """For each window of a grid, the part it answers for: up to half-way into each overlap.

    Pieces of one vessel cut out of neighbouring tiles by these windows abut exactly, so merging
    touching pieces rebuilds the vessel once, from the tiles' central parts, which a CNN sees with
    the most context; without overlap every tile owns its whole window.
    """
    def bounds(spans: set[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int]]:
        ordered = sorted(spans)
        out = {}
        for i, (start, length) in enumerate(ordered):
            lo = start if i == 0 else (start + ordered[i - 1][0] + ordered[i - 1][1]) // 2
            hi = start + length if i == len(ordered) - 1 else (ordered[i + 1][0] + start + length) // 2
            out[(start, length)] = (max(lo, start), min(hi, start + length))
        return out

    rows = bounds({(r, h) for r, _, h, _ in windows})
    cols = bounds({(c, w) for _, c, _, w in windows})
    owned = []
    for r, c, h, w in windows:
        (r0, r1), (c0, c1) = rows[(r, h)], cols[(c, w)]
        owned.append((r0, c0, r1 - r0, c1 - c0))
    return owned


def tile_sample(sample: Sample, size: int, overlap: int = 0, band_index: list[int] | None = None,
                seq0: int = 0, scene_id: str | None = None, modality: str | None = None,
                band_names: list[str] | None = None) -> Iterator[Tile]:
    """The tiles of a source sample (flightsim.sources), windows read on demand.

    ``band_index`` picks (and may repeat) source bands, 0-based, so the tiles carry what the model
    takes (:func:`flightsim.sources.adapt_bands`). ``scene_id`` (default: the sample's name) names
    the acquisition; a runtime treats a (scene_id, tile_id) it has seen as a resend, so two passes
    over one image need two ids. ``modality`` (``optical`` or ``sar``), when known, travels in each
    tile's header so the runtime can tell whether its model suits the scene. ``band_names``: the
    names the tiles' bands go under (default: the source bands picked); the rig passes the model's
    where the user chose the bands (``--bands``): the user's word that those source bands are the
    model's, which the runtime would otherwise refuse as misplaced (nir, red, green into red, green,
    blue: ``bad_shape``).
    """
    scene_id = scene_id or sample.name
    windows = tile_grid(sample.height, sample.width, size, overlap)
    crs = sample.crs.to_string() if sample.crs is not None else None
    bands = [sample.bands[i] for i in band_index] if band_index else list(sample.bands)
    if band_names is not None:
        if len(band_names) != len(bands):
            raise ValueError(f"band_names {band_names} name {len(band_names)} bands; the tiles carry {len(bands)}")
        bands = list(band_names)
    for i, (window, owned) in enumerate(zip(windows, owned_windows(windows))):
        row, col, h, w = window
        pixels = sample.read(window)
        if band_index:
            pixels = pixels[band_index]
        yield Tile(
            scene_id=scene_id, tile_id=f"{scene_id}/r{row}c{col}", seq=seq0 + i,
            pixels=np.ascontiguousarray(pixels), transform=sample.transform * Affine.translation(col, row),
            crs=crs, window=window, bands=bands, owned=owned, modality=modality,
        )


def tile_scene(path: str | Path, size: int, scene_id: str | None = None) -> Iterator[Tile]:
    """The tiles of one image file (``python -m flightsim stream``), a GeoTIFF read window by window
    (never the whole scene at once).

    The file is read as every source reads it (:func:`flightsim.sources.base.read_image`: alpha band
    dropped, palette indices expanded, the same band names) and cut by :func:`tile_sample`, so the
    stream command and ``hil run`` send identical tiles of one file; every window of the grid is one
    tile. ``scene_id`` defaults to the file's stem.

    Raises:
        ValueError: naming the file, if it is missing, unreadable or not uint8/uint16 counts.
    """
    from flightsim.sources.base import Georef, read_image  # flightsim.sources imports nothing of this module

    sample = read_image(Path(path), Georef())
    yield from tile_sample(sample, size, scene_id=scene_id or sample.name)
