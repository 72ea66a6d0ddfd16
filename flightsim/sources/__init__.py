"""Scene sources: every supported format as one interface, :class:`Source` of :class:`Sample`.

``open_source("KIND:PATH")`` opens one; ``SOURCES`` lists the kinds. A spec without a known kind
prefix is a GeoTIFF path, and ``synthetic`` (or ``synthetic:seed=7,mode=sar,gsd=1``) draws scenes.
Each source is what ``hil run --scene`` streams and a data set the search can train on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flightsim.sources.airbus import AirbusSource
from runtime.bands import adapt_bands  # the one rule, shared with `runtime infer`
from flightsim.sources.base import DEFAULTS, Concat, Georef, Sample, Source, Subset, units_of
from flightsim.sources.coco import CocoSource
from flightsim.sources.dota import DotaSource
from flightsim.sources.geotiff import GeoTIFFSource, read_truth_file
from flightsim.sources.hrsc2016 import HRSC2016Source
from flightsim.sources.masks import LAYOUTS, MaskFolderSource
from flightsim.sources.synthetic import SyntheticSource

#: ``KIND`` of ``--scene KIND:PATH`` -> what it reads.
SOURCES: dict[str, str] = {
    "geotiff": "one GeoTIFF (or any image GDAL reads); --truth: mask GeoTIFF or vessel GeoJSON",
    "synthetic": "synthetic scenes: synthetic[:seed=N,seeds=A-B,mode=optical|sar,harbour=true,gsd=M,size=PX]",
    "hrsid-mini": "images/<stem>.jpg + masks/<stem>.png, ship = green > 127",
    "hrsid-official": "data/<stem>.png + data/<stem>_instance_color_RGB.png, ship = red > 0",
    "coco": "COCO JSON (file, or every *.json under a folder): RLE or polygon segmentation",
    "sen2ships": "COCO per port (as coco), Sentinel-2 RGBA PNG, 10 m unless --gsd or the file says",
    "hrsc2016": "AllImages/ + Annotations/*.xml (rotated boxes) + Segmentations/*.png",
    "dota": "images/ + labelTxt/*.txt quadrilaterals, category 'ship'",
    "airbus": "images (train_v2/) + CSV of run-length masks (ImageId, EncodedPixels)",
}

__all__ = ["SOURCES", "LAYOUTS", "AirbusSource", "CocoSource", "Concat", "DotaSource", "GeoTIFFSource", "Georef",
           "HRSC2016Source", "MaskFolderSource", "Sample", "Source", "Subset", "SyntheticSource", "adapt_bands",
           "open_source", "parse_spec", "read_truth_file", "units_of"]


def parse_spec(spec: str) -> tuple[str, str]:
    """``KIND:REST`` split, or ``("geotiff", spec)`` for a bare path and ``("synthetic", "")``.

    Raises:
        ValueError: for ``something:...`` whose prefix is not a kind and which is no file either.
    """
    spec = str(spec)
    if spec == "synthetic":
        return "synthetic", ""
    kind, sep, rest = spec.partition(":")
    if sep and kind in SOURCES:
        return kind, rest
    if sep and not Path(spec).exists() and "/" not in kind:
        raise ValueError(f"--scene {spec!r}: unknown source {kind!r}; valid: {sorted(SOURCES)}")
    return "geotiff", spec


def _synthetic_options(text: str, seed: int | None) -> tuple[list[int], dict[str, Any]]:
    cfg = DEFAULTS["sources"]
    seeds = [seed if seed is not None else cfg["synthetic_seed"]]
    options: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"synthetic option {item!r} is not key=value; valid keys: {sorted(_SYNTH_KEYS)}")
        if key not in _SYNTH_KEYS:
            raise ValueError(f"unknown synthetic option {key!r}; valid: {sorted(_SYNTH_KEYS)}")
        try:
            if key == "seed":
                seeds = [int(value)]
            elif key == "seeds":
                lo, _, hi = value.partition("-")
                seeds = list(range(int(lo), int(hi or lo) + 1))
            elif key in ("size", "n_ships"):
                options[key] = int(value)
            elif key in ("gsd", "gsd_m"):
                options["gsd_m"] = float(value)
            elif key == "harbour":
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                options["harbour"] = value.lower() in ("true", "1", "yes")
            else:
                options[key] = value
        except ValueError:
            raise ValueError(f"synthetic option {key}={value!r} is not a valid value") from None
    return seeds, options


_SYNTH_KEYS = {"seed", "seeds", "size", "gsd", "gsd_m", "mode", "harbour", "dtype", "n_ships"}


def open_source(spec: str | list[str] | tuple[str, ...], *, truth: str | Path | None = None,
                georef: Georef | None = None, seed: int | None = None, limit: int | None = None) -> Source:
    """Open ``spec`` (see :data:`SOURCES`) as a :class:`Source`; a list of specs is their
    :class:`Concat`, in that order.

    Raises:
        ValueError: for an unknown kind (listing the valid ones), a path that does not exist, a
            ``truth`` with a source that carries its own, or any malformed file (naming it).
    """
    if not isinstance(spec, (str, Path)):
        if truth is not None:
            raise ValueError("--truth is for a single GeoTIFF scene, not a list of sources")
        return Concat([open_source(s, georef=georef, seed=seed, limit=limit) for s in spec])
    kind, rest = parse_spec(spec)
    georef = georef or Georef()
    if truth is not None and kind != "geotiff":
        raise ValueError(f"--truth is for a GeoTIFF scene; a {kind} source carries its own truth")
    if kind == "synthetic":
        seeds, options = _synthetic_options(rest, seed)
        return SyntheticSource(seeds, georef=georef, limit=limit, **options)
    if not rest:
        raise ValueError(f"--scene {spec!r}: give a path, as {kind}:PATH")
    if kind == "geotiff":
        path = Path(rest)
        if path.is_dir():  # a data set's folder with its KIND forgotten: it exists, "no such file" would mislead
            raise ValueError(f"--scene {spec!r} is a folder, not an image file: a data set needs its KIND, e.g. "
                             f"coco:{rest}; KIND one of {sorted(set(SOURCES) - {'geotiff', 'synthetic'})}")
        if not path.is_file():
            raise ValueError(f"--scene {spec!r}: no such file; give a GeoTIFF path, 'synthetic' or KIND:PATH "
                             f"with KIND one of {sorted(SOURCES)}")
        return GeoTIFFSource(path, truth=truth, georef=georef, limit=limit)
    if kind in LAYOUTS:
        return MaskFolderSource(rest, layout=kind, georef=georef, limit=limit)
    if kind == "coco":
        return CocoSource(rest, georef=georef, limit=limit)
    if kind == "sen2ships":
        # The kind's gsd is a default: it yields to the user's --gsd and to a file's own geotransform,
        # and survives a --crs or --origin given alone.
        source = CocoSource(rest, georef=georef, limit=limit, default_gsd=DEFAULTS["sources"]["sen2ships_gsd_m"])
        source.kind = "sen2ships"
        return source
    if kind == "hrsc2016":
        return HRSC2016Source(rest, georef=georef, limit=limit)
    if kind == "dota":
        return DotaSource(rest, georef=georef, limit=limit)
    return AirbusSource(rest, georef=georef, limit=limit)
