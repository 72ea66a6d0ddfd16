"""Tiles as the payload sees them, and the tiler that cuts them out of a GeoTIFF scene."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from runtime.protocol import TileHeader, encode_tile


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

    def frames(self, want_mask: bool = False) -> list[bytes]:
        """The wire frames of this tile (runtime.protocol)."""
        header = TileHeader(
            scene_id=self.scene_id, tile_id=self.tile_id, seq=self.seq, shape=self.pixels.shape,
            dtype=self.pixels.dtype.name, checksum="", transform=tuple(self.transform)[:6],
            crs=self.crs, bands=list(self.bands), time=self.time or time.time(),
            window=self.window, want_mask=want_mask,
        )
        return encode_tile(header, self.pixels)


def tile_grid(height: int, width: int, size: int) -> list[tuple[int, int, int, int]]:
    """Windows (row, col, h, w) covering a height x width image in size x size tiles, edges short."""
    if size <= 0:
        raise ValueError(f"tile size must be positive, got {size}")
    return [
        (row, col, min(size, height - row), min(size, width - col))
        for row in range(0, height, size)
        for col in range(0, width, size)
    ]


def tile_scene(path: str | Path, size: int, scene_id: str | None = None) -> Iterator[Tile]:
    """Read a GeoTIFF window by window (never the whole scene at once) and yield its tiles."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such scene file")
    with rasterio.open(path) as src:
        if src.dtypes[0] not in ("uint8", "uint16"):
            raise ValueError(f"{path}: pixels are {src.dtypes[0]}; a payload sends uint8 or uint16 counts")
        crs = src.crs.to_string() if src.crs else None
        bands = [d or f"band{i + 1}" for i, d in enumerate(src.descriptions)]
        scene_id = scene_id or path.stem
        for seq, (row, col, h, w) in enumerate(tile_grid(src.height, src.width, size)):
            window = Window(col, row, w, h)
            yield Tile(
                scene_id=scene_id, tile_id=f"{scene_id}/r{row}c{col}", seq=seq,
                pixels=src.read(window=window), transform=src.window_transform(window),
                crs=crs, window=(row, col, h, w), bands=bands,
            )
