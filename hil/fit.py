"""Does the scene suit the model? Modality, ground sample distance and count type, against the
model's manifest.

A SAR model streamed Sentinel-2 optical tiles (or a 3 m model streamed 30 cm tiles) answers with
confident nonsense. The search writes what a model was trained for (``trained_for``: modality, the
range of ground sample distance and the type of the counts) into its manifest; the rig compares it
with the scene before streaming and warns, or refuses with ``strict``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from flightsim.sources import Concat, Source, Subset
from runtime.fit import MODALITIES, fit_warnings, manifest_trained_for

#: Modality of a source kind, where the format says it; other kinds (coco, geotiff) cannot tell.
MODALITY_OF_KIND = {"hrsid-mini": "sar", "hrsid-official": "sar", "sen2ships": "optical", "dota": "optical",
                    "hrsc2016": "optical", "airbus": "optical"}


def scene_modality(source: Source) -> str | None:
    """The modality the source's format implies, or None when it does not say."""
    if isinstance(source, Subset):
        return scene_modality(source.source)
    if isinstance(source, Concat):
        found = {scene_modality(p) for p in source.parts}
        return found.pop() if len(found) == 1 else None
    if source.kind == "synthetic":
        return "sar" if getattr(source, "options", {}).get("mode") == "sar" else "optical"
    return MODALITY_OF_KIND.get(source.kind)


def sample_modalities(source: Source) -> list[str | None]:
    """The modality of each sample of ``source``, in order, as its own data set's format says it:
    a list of sources may join a set that says (HRSID: SAR) to one that does not (COCO)."""
    if isinstance(source, Subset):
        inner = sample_modalities(source.source)
        return [inner[i] for i in source.indices]
    if isinstance(source, Concat):
        return [m for part in source.parts for m in sample_modalities(part)]
    return [scene_modality(source)] * len(source)


def model_fit(manifest: dict[str, Any], source: Source, gsds_m: list[float],
              modality: str | None = None, counts: Sequence[str] = ()) -> dict[str, Any]:
    """Warnings where the scene is not what the model was trained for.

    Args:
        gsds_m: metres per pixel of the scene's georeferenced samples (none: not checked).
        modality: what the user says the scene is (else what the source's format implies).
        counts: the count types of the scene's samples (``uint8``, ``uint16``; none: not checked).
    """
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality {modality!r}; valid: {list(MODALITIES)}")
    trained = manifest_trained_for(manifest)
    if not trained:
        return {"checked": False, "warnings": [], "note": "the model's manifest does not say what it was trained for"}
    scene = modality or scene_modality(source)
    warnings = fit_warnings(trained, scene, gsds_m, counts)
    if scene is None:  # samples whose own data set says what they are, in a list that does not agree
        found = Counter(m for m in sample_modalities(source) if m is not None and m != trained["modality"])
        warnings = [f"{n} of the samples are {m}; the model was trained on {trained['modality']} imagery"
                    for m, n in sorted(found.items())] + warnings
    return {"checked": True, "scene_modality": scene, "trained_for": trained, "warnings": warnings}
