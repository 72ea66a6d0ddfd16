"""Making a source's bands what the model takes, explicitly and on the record: the one rule of the
rig (``python -m hil run``, via :mod:`flightsim.sources`) and of ``python -m runtime infer``.

The runtime rejects a tile whose band count differs from the model's (``bad_shape``), so a ground
tool chooses, before streaming or inferring, which source band feeds each model band, and says how.
It lives in the runtime because ``runtime infer`` needs it and the runtime imports no ground
package (docs/architecture.md); flightsim re-exports it. The rules, first match wins:

1. ``select`` given by the user (``--bands 1,1,1``: 1-based source bands): exactly that; the rig's
   tiles then go under the model's band names, the user's word that those bands are the model's
   (``flightsim.tiles.tile_sample``'s ``band_names``), so a false-colour choice is not refused below.
2. Same count: as is, unless the source names the model's bands in another order (a BGR file into
   an RGB model): then reordered by name (the runtime refuses a tile that names the model's bands
   in another order, ``bad_shape``). A source that names some of the model's bands at other
   positions, and not all of them (near-infrared, red, green into a red, green, blue model), fits
   no rule: as is, its red would feed the model's green (:func:`misplaced_bands`; until 2026-12-05
   it went as is, and the runtime took such tiles too).
3. The model's band names all among the source's: picked by name (a 4-band red/green/blue/nir
   GeoTIFF into an RGB model).
4. One source band, several model bands: the band repeated (a grey SAR amplitude into an RGB model).

Anything else is an error that says what ``--bands`` must be (or, for a caller without that option,
which rules were tried). (An alpha band never gets here: the readers drop it.)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def model_band_names(input_spec: dict[str, Any]) -> list[str]:
    """The band names of a manifest's ``input``: its ``bands``, else ``b0``, ``b1``, ... by count
    (what a source's bands are matched against, in hil, ``runtime infer`` and the second stage)."""
    return list(input_spec.get("bands") or [f"b{i}" for i in range(input_spec["shape"][1])])


def adapt_bands(source_bands: list[str], model_bands: list[str], select: list[int] | None = None,
                strict: bool = True, option: str | None = "--bands") -> tuple[list[int] | None, str]:
    """The 0-based source band for each model band (None: as is) and a sentence for the report.

    With ``strict=False`` no applicable rule is not an error: the bands go as they are, the runtime
    rejects every tile (``bad_shape``) and the sentence says so. ``option`` is the caller's
    command-line option that takes ``select``, named in the error so the user knows what to give;
    None where the caller has none, and the error lists the rules tried instead.

    Raises:
        ValueError: for a ``select`` of the wrong length or out of range, or when no rule applies.
    """
    n_src, n_model = len(source_bands), len(model_bands)
    if select is not None:
        if len(select) != n_model:
            raise ValueError(f"{option or 'select'} has {len(select)} entries; the model takes {n_model} bands "
                             f"{model_bands}")
        if not all(1 <= b <= n_src for b in select):
            raise ValueError(f"{option or 'select'} {select}: valid source bands are 1..{n_src} ({source_bands})")
        index = [b - 1 for b in select]
        return index, f"source bands {select} (1-based, given by {option or 'select'}) feed model bands {model_bands}"
    lower = [b.lower() for b in source_bands]
    misplaced: list[str] = []
    if n_src == n_model:
        wanted = [b.lower() for b in model_bands]
        if lower != wanted and sorted(lower) == sorted(wanted) and len(set(wanted)) == n_model:
            index = [lower.index(b) for b in wanted]
            return index, f"source bands {source_bands} reordered by name to the model's {model_bands}"
        misplaced = misplaced_bands(source_bands, model_bands)
        if not misplaced:
            return None, f"{n_src} source bands {source_bands} fed as is to model bands {model_bands}"
    if all(b.lower() in lower for b in model_bands):
        index = [lower.index(b.lower()) for b in model_bands]
        return index, f"source bands picked by name: {[source_bands[i] for i in index]} of {source_bands}"
    if n_src == 1:
        return [0] * n_model, f"the single source band {source_bands[0]!r} repeated into {n_model} model bands"
    remedy = (f"give {option} with {n_model} comma-separated 1-based source band numbers" if option else
              "no rule applies (the same count, the model's band names among the source's, or a single band "
              f"repeated): make a file of the {n_model} bands the model takes")
    wrong = (f" (it names the model's {misplaced} at other positions: as they are, they would feed other model "
             "bands)") if misplaced else ""
    problem = f"the scene has {n_src} bands {source_bands}, the model takes {n_model} {model_bands}{wrong}; {remedy}"
    if strict:
        raise ValueError(problem)
    return None, f"not adapted: {problem}; sent as they are, so the runtime rejects them (bad_shape)"


def misplaced_bands(source_bands: list[str], model_bands: list[str]) -> list[str]:
    """The model's band names (lower case) that ``source_bands``, as many as the model's, names at
    another position than the model's, compared without case: fed as they are, those bands would
    reach model bands they are not. Empty for lists of other lengths."""
    if len(source_bands) != len(model_bands):
        return []
    lower = [str(b).lower() for b in source_bands]
    return [m for m, own in zip((str(b).lower() for b in model_bands), lower) if m != own and m in lower]


def palette_table(src: Any) -> tuple[np.ndarray, list[str], str]:
    """The colour table of band 1 of a palette image as a (bands, entries) lookup array, the band names
    and the note: one grey band where every entry has R = G = B, else red, green, blue. Indices are not
    counts of a sensor; what a payload sends is the colour they stand for. ``src``: an open rasterio
    dataset whose band 1 is the palette's (the readers of hil and of ``runtime infer`` both expand
    through it, so both feed a model the same bands)."""
    try:
        cmap = src.colormap(1)
    except ValueError as exc:
        raise ValueError(f"{src.name}: palette image without a readable colour table: {exc}") from None
    n = 256 if src.dtypes[0] == "uint8" else 65536
    table = np.zeros((n, 4), np.uint8)
    for i, rgba in cmap.items():
        if 0 <= i < n:
            table[i] = rgba[:4] if len(rgba) >= 4 else (*rgba[:3], 255)
    used = np.array(sorted(i for i in cmap if 0 <= i < n), dtype=np.int64)
    grey = bool((table[used, 0] == table[used, 1]).all() and (table[used, 1] == table[used, 2]).all())
    alpha = " (its transparency ignored)" if (table[used, 3] < 255).any() else ""
    if grey:
        return (table[:, :1].T.copy(), ["band1"],
                f"palette image: {len(used)} colours, all grey, expanded to one grey band{alpha}")
    return (table[:, :3].T.copy(), ["red", "green", "blue"],
            f"palette image: {len(used)} colours expanded to RGB{alpha}")
