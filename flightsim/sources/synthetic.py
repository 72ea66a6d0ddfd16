"""Synthetic scenes (``flightsim.synthetic``) as a source: one sample per seed, exact truth."""

from __future__ import annotations

from typing import Any

from flightsim.sources.base import Georef, Sample, Source


class SyntheticSource(Source):
    """The scenes of ``seeds``, drawn on access; ``options`` go to ``generate_scene``."""

    kind = "synthetic"

    def __init__(self, seeds: list[int], georef: Georef | None = None, limit: int | None = None,
                 **options: Any):
        self.root = None  # type: ignore[assignment]
        self.georef = georef or Georef()
        if self.georef.given:
            raise ValueError("a synthetic scene has its own georeference; --gsd goes to the generator as gsd=")
        if limit is not None and limit < 1:  # as Source.__init__, which this one does not call (no root)
            raise ValueError(f"limit must be a positive number of samples, got {limit}")
        self.limit, self.skipped = limit, []
        if not seeds:
            raise ValueError("synthetic source needs at least one seed")
        self.seeds, self.options = [int(s) for s in seeds], options

    def __len__(self) -> int:
        return self._limited(len(self.seeds))

    def _load(self, index: int) -> Sample:
        from flightsim.synthetic import generate_scene

        seed = self.seeds[index]
        scene = generate_scene(seed, **self.options)
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return Sample(name=f"synthetic-{seed}", height=scene.mask.shape[0], width=scene.mask.shape[1],
                      transform=scene.transform, crs=scene.crs, bands=list(scene.bands), dtype=scene.image.dtype.name,
                      image=scene.image, mask=scene.mask, vessels=[v.polygon for v in scene.vessels],
                      notes=[f"synthetic seed {seed}, gsd {scene.gsd_m} m" + (f", {opts}" if opts else "")])

    def describe(self) -> dict[str, Any]:
        return {"source": "synthetic", "seeds": self.seeds, "options": self.options, "samples": len(self),
                "skipped": []}
