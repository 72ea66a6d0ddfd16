"""Training data: synthetic scenes held in memory and a sampler of augmented patches.

Vessels cover a tiny fraction of the pixels of a maritime scene, so uniformly drawn patches are
nearly all sea and the network would learn to say "no vessel" everywhere. The sampler therefore
centres a set fraction of patches near a vessel pixel and draws the rest uniformly, which keeps the
sea clutter (waves, clouds, whatever the generator paints) in the training signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from flightsim.synthetic import generate_scene


@dataclass(frozen=True)
class SceneArrays:
    """One scene as arrays: ``image`` (bands, H, W) in raw counts, ``mask`` (H, W) with vessel=1."""

    seed: int
    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Normalization:
    """Per-band affine map from raw counts to network input: ``(counts - mean) / std``.

    Applied on the host by the runtime, so it is recorded in the manifest rather than baked into the IR.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def apply(self, counts: np.ndarray) -> np.ndarray:
        """Normalise (bands, H, W) or (N, bands, H, W) counts to float32."""
        shape = (-1, 1, 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(shape)
        std = np.asarray(self.std, dtype=np.float32).reshape(shape)
        return (counts.astype(np.float32) - mean) / std

    def to_manifest(self) -> dict[str, object]:
        return {"where": "host", "mean": list(self.mean), "std": list(self.std)}


def load_scenes(seeds: Iterable[int], scene_kwargs: dict[str, object]) -> list[SceneArrays]:
    """Generate the synthetic scenes for ``seeds`` (``scene_kwargs`` go to ``generate_scene``)."""
    scenes = []
    for seed in seeds:
        scene = generate_scene(int(seed), **scene_kwargs)
        scenes.append(SceneArrays(int(seed), np.asarray(scene.image), (np.asarray(scene.mask) > 0).astype(np.uint8)))
    return scenes


def estimate_normalization(scenes: list[SceneArrays]) -> Normalization:
    """Per-band mean and standard deviation of the counts over all pixels of ``scenes``."""
    bands = scenes[0].image.shape[0]
    total = np.zeros(bands)
    total_sq = np.zeros(bands)
    n = 0
    for s in scenes:
        px = s.image.reshape(bands, -1).astype(np.float64)
        total += px.sum(axis=1)
        total_sq += (px**2).sum(axis=1)
        n += px.shape[1]
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    # A flat band would divide by zero; 1 count is a harmless floor.
    std = np.maximum(std, 1.0)
    return Normalization(tuple(round(float(m), 3) for m in mean), tuple(round(float(s), 3) for s in std))


class PatchSampler:
    """Draws augmented (image, mask) patch batches from in-memory scenes.

    A ``vessel_fraction`` of patches contain a vessel pixel at a uniformly random position in the
    patch; the rest are placed uniformly. Each patch is flipped and rotated by a random multiple of
    90 degrees: the scene statistics are isotropic, so these are free extra data.
    """

    def __init__(
        self,
        scenes: list[SceneArrays],
        norm: Normalization,
        patch: int,
        vessel_fraction: float,
        rng: np.random.Generator,
    ):
        if not 0.0 <= vessel_fraction <= 1.0:
            raise ValueError(f"vessel_fraction must be in [0, 1], got {vessel_fraction}")
        too_small = [s.seed for s in scenes if min(s.mask.shape) < patch]
        if too_small:
            raise ValueError(f"scenes {too_small} are smaller than the patch size {patch}")
        self.scenes = scenes
        # Scenes stay in counts (uint8 is a quarter of float32) and each patch is normalised when cut.
        self.norm = norm
        self.patch = patch
        self.vessel_fraction = vessel_fraction
        self.rng = rng
        # Vessel pixel coordinates per scene, so a vessel patch is one index draw away.
        self.vessel_px = [np.argwhere(s.mask > 0) for s in scenes]
        self.with_vessels = [i for i, px in enumerate(self.vessel_px) if len(px)]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` patches: images (N, bands, P, P) float32 normalised, masks (N, 1, P, P) float32."""
        images, masks = [], []
        for _ in range(size):
            image, mask = self._one()
            images.append(image)
            masks.append(mask[None])
        return np.stack(images), np.stack(masks).astype(np.float32)

    def _one(self) -> tuple[np.ndarray, np.ndarray]:
        p, rng = self.patch, self.rng
        if self.with_vessels and rng.random() < self.vessel_fraction:
            i = self.with_vessels[rng.integers(len(self.with_vessels))]
            y, x = self.vessel_px[i][rng.integers(len(self.vessel_px[i]))]
            h, w = self.scenes[i].mask.shape
            top = int(np.clip(y - rng.integers(p), 0, h - p))
            left = int(np.clip(x - rng.integers(p), 0, w - p))
        else:
            i = int(rng.integers(len(self.scenes)))
            h, w = self.scenes[i].mask.shape
            top, left = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
        image = self.norm.apply(self.scenes[i].image[:, top : top + p, left : left + p])
        mask = self.scenes[i].mask[top : top + p, left : left + p]
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k)
        if rng.random() < 0.5:
            image, mask = image[:, :, ::-1], mask[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)
