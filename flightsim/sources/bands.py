"""Making a source's bands what the model takes, explicitly and on the record.

The runtime rejects a tile whose band count differs from the model's (``bad_shape``), so the rig
chooses, before streaming, which source band feeds each model band, and the report says how. The
rules, first match wins:

1. ``select`` given by the user (``--bands 1,1,1``: 1-based source bands): exactly that.
2. Same count: as is.
3. The model's band names all among the source's: picked by name (a 4-band red/green/blue/nir
   GeoTIFF into an RGB model).
4. One source band, several model bands: the band repeated (a grey SAR amplitude into an RGB model).

Anything else is an error that says what ``--bands`` must be. (An alpha band never gets here:
the sources drop it when they read the file.)
"""

from __future__ import annotations


def adapt_bands(source_bands: list[str], model_bands: list[str], select: list[int] | None = None,
                strict: bool = True) -> tuple[list[int] | None, str]:
    """The 0-based source band for each model band (None: as is) and a sentence for the report.

    With ``strict=False`` no applicable rule is not an error: the bands go as they are, the runtime
    rejects every tile (``bad_shape``) and the sentence says so.

    Raises:
        ValueError: for a ``select`` of the wrong length or out of range, or when no rule applies.
    """
    n_src, n_model = len(source_bands), len(model_bands)
    if select is not None:
        if len(select) != n_model:
            raise ValueError(f"--bands has {len(select)} entries; the model takes {n_model} bands {model_bands}")
        if not all(1 <= b <= n_src for b in select):
            raise ValueError(f"--bands {select}: valid source bands are 1..{n_src} ({source_bands})")
        index = [b - 1 for b in select]
        return index, f"source bands {select} (1-based, given by --bands) feed model bands {model_bands}"
    if n_src == n_model:
        return None, f"{n_src} source bands {source_bands} fed as is to model bands {model_bands}"
    lower = [b.lower() for b in source_bands]
    if all(b.lower() in lower for b in model_bands):
        index = [lower.index(b.lower()) for b in model_bands]
        return index, f"source bands picked by name: {[source_bands[i] for i in index]} of {source_bands}"
    if n_src == 1:
        return [0] * n_model, f"the single source band {source_bands[0]!r} repeated into {n_model} model bands"
    problem = (f"the scene has {n_src} bands {source_bands}, the model takes {n_model} {model_bands}; "
                     f"give --bands with {n_model} comma-separated 1-based source band numbers")
    if strict:
        raise ValueError(problem)
    return None, f"not adapted: {problem}; sent as they are, so the runtime rejects them (bad_shape)"
