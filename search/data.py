"""Training data: synthetic scenes held in memory and a sampler of augmented patches.

Vessels cover a tiny fraction of the pixels of a maritime scene, so uniformly drawn patches are
nearly all sea and the network would learn to say "no vessel" everywhere. The sampler therefore
centres a set fraction of patches near a vessel pixel and draws the rest uniformly, which keeps the
sea clutter (waves, clouds, whatever the generator paints) in the training signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.bundle import NORMALIZATION_SCALES
from runtime.preprocess import normalise_counts


@dataclass(frozen=True)
class SceneArrays:
    """One scene as arrays: ``image`` (bands, H, W) in raw counts, ``mask`` (H, W) with vessel=1,
    and, where a sea/land mask is known, ``land`` (H, W) with land=1 (``[data] land_masks``).
    ``labels`` (H, W), where the truth has instances: each vessel's pixels numbered 1, 2, ... (0
    elsewhere), so that the object scores count the vessels hil counts (two ships moored side by
    side are two, not one connected blob: :func:`search.evaluate.object_scores`)."""

    seed: int
    image: np.ndarray
    mask: np.ndarray
    land: np.ndarray | None = None
    labels: np.ndarray | None = None


@dataclass(frozen=True)
class Normalization:
    """Per-band affine map from raw counts to network input: ``(counts - mean) / std``.

    Applied on the host by the runtime, so it is recorded in the manifest rather than baked into the IR.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    #: "linear" (the counts) or "log" (log(1 + counts), then mean and std): one of NORMALIZATION_SCALES
    scale: str = "linear"

    def apply(self, counts: np.ndarray) -> np.ndarray:
        """Normalise (bands, H, W) or (N, bands, H, W) counts to float32 with the payload's own
        code (:func:`runtime.preprocess.normalise_counts`), so that training sees the very numbers
        the payload feeds the model."""
        shape = (-1, 1, 1)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(shape)
        inv_std = (1.0 / np.asarray(self.std, dtype=np.float32)).reshape(shape)
        return normalise_counts(counts, mean, inv_std, self.scale == "log")

    def to_manifest(self) -> dict[str, object]:
        return {"where": "host", "mean": list(self.mean), "std": list(self.std)} | (
            {"scale": self.scale} if self.scale != "linear" else {})


def synthetic_kwargs(data: dict[str, Any], size: int) -> dict[str, Any]:
    """``generate_scene`` keywords of the ``[data]`` table for scenes of ``size`` pixels."""
    return {"size": size, "dtype": data["scene_dtype"], "mode": data["scene_mode"]}


def load_scenes(seeds: Iterable[int], scene_kwargs: dict[str, object]) -> list[SceneArrays]:
    """Generate the synthetic scenes for ``seeds`` (``scene_kwargs`` go to ``generate_scene``)."""
    from flightsim.synthetic import generate_scene  # rasterio: not needed where arrays are only trained on

    scenes = []
    for seed in seeds:
        scene = generate_scene(int(seed), **scene_kwargs)
        scenes.append(SceneArrays(int(seed), np.asarray(scene.image), (np.asarray(scene.mask) > 0).astype(np.uint8)))
    return scenes


def estimate_normalization(scenes: list[SceneArrays], scale: str = "linear") -> Normalization:
    """Per-band mean and standard deviation over all pixels of ``scenes``, of the counts or (``scale
    = "log"``) of log(1 + counts).

    Raises:
        ValueError: for a scale other than those of :data:`NORMALIZATION_SCALES`.
    """
    if scale not in NORMALIZATION_SCALES:
        raise ValueError(f"normalization scale {scale!r}; valid: {list(NORMALIZATION_SCALES)}")
    bands = scenes[0].image.shape[0]
    total = np.zeros(bands)
    total_sq = np.zeros(bands)
    n = 0
    for s in scenes:
        px = (np.log1p(s.image, dtype=np.float32) if scale == "log" else s.image).reshape(bands, -1).astype(np.float64)
        total += px.sum(axis=1)
        total_sq += (px**2).sum(axis=1)
        n += px.shape[1]
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    # A flat band would divide by zero; 1 count (a hundredth on the log scale) is a harmless floor.
    std = np.maximum(std, 1.0 if scale == "linear" else 0.01)
    digits = 3 if scale == "linear" else 5
    return Normalization(tuple(round(float(m), digits) for m in mean), tuple(round(float(s), digits) for s in std),
                         scale)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` pixels (a square neighbourhood)."""
    h, w = mask.shape
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


#: The land value of a pixel whose scene has no sea/land mask: the land loss leaves it out.
LAND_UNKNOWN = 255

#: Augmentations the sampler knows; ``[train] augment`` picks from them (each measured in docs/models.md).
AUGMENTATIONS = ("flip", "rot90", "gain", "contrast", "speckle", "scale")


@dataclass(frozen=True)
class SamplingOptions:
    """How patches are drawn (``[train]`` of search/defaults.toml; one place for the defaults)."""

    vessel_fraction: float = 0.6
    #: Share of patches centred on the brightest pixels that are not vessel (land, coast, clutter):
    #: the false alarms of a SAR detector.
    hard_negative_fraction: float = 0.0
    augment: tuple[str, ...] = ("flip", "rot90")
    #: Sampling weight of each data set of a concatenated source (empty: every sample alike).
    group_weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.vessel_fraction <= 1.0 or not 0.0 <= self.hard_negative_fraction <= 1.0 \
                or self.vessel_fraction + self.hard_negative_fraction > 1.0:
            raise ValueError(f"vessel_fraction ({self.vessel_fraction}) and hard_negative_fraction "
                             f"({self.hard_negative_fraction}) must lie in [0, 1] and sum to at most 1")
        unknown = sorted(set(self.augment) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"unknown augmentation {unknown}; valid: {list(AUGMENTATIONS)}")

    @classmethod
    def from_config(cls, train: dict[str, object], data: dict[str, object] | None = None) -> SamplingOptions:
        return cls(vessel_fraction=float(train["vessel_fraction"]),  # type: ignore[arg-type]
                   hard_negative_fraction=float(train.get("hard_negative_fraction", 0.0)),  # type: ignore[arg-type]
                   augment=tuple(train.get("augment", ("flip", "rot90"))),  # type: ignore[arg-type]
                   group_weights=tuple(float(w) for w in (data or {}).get("source_weights", ())))  # type: ignore[union-attr]


class PatchSampler:
    """Draws augmented (image, mask) patch batches from in-memory scenes.

    A ``vessel_fraction`` of patches contain a vessel pixel at a uniformly random position in the
    patch; a ``hard_negative_fraction`` are centred near one of the brightest non-vessel pixels of a
    scene (bright land, coast and clutter: what a SAR detector mistakes for ships); the rest are
    placed uniformly. Each patch is then augmented as ``augment`` says: flips and 90-degree
    rotations (the scene statistics are isotropic), a random gain and contrast (gamma) on the
    counts, multiplicative speckle (unit-mean gamma noise, as SAR amplitude has), and a scale
    jitter (the patch cut larger or smaller and resampled, nearest for the mask). A scene smaller
    than the patch is cut whole and padded as the runtime pads an edge tile (normalised 0, no
    vessel, land unknown), so a patch may be as large as the tile the payload infers.
    """

    def __init__(
        self,
        scenes: list[SceneArrays],
        norm: Normalization,
        patch: int,
        vessel_fraction: float | SamplingOptions,
        rng: np.random.Generator,
        groups: list[int] | None = None,
    ):
        opts = vessel_fraction if isinstance(vessel_fraction, SamplingOptions) else SamplingOptions(vessel_fraction)
        if patch < 1:
            raise ValueError(f"patch must be a positive number of pixels; got {patch}")
        self.scenes = scenes
        # Scenes stay in counts (uint8 is a quarter of float32) and each patch is normalised when cut.
        self.norm = norm
        self.patch = patch
        self.opts = opts
        self.vessel_fraction = opts.vessel_fraction
        self.rng = rng
        # Vessel pixel coordinates per scene, so a vessel patch is one index draw away.
        self.vessel_px = [np.argwhere(s.mask > 0) for s in scenes]
        self.with_vessels = [i for i, px in enumerate(self.vessel_px) if len(px)]
        self.bright_px = [self._brightest_background(s) for s in scenes] if opts.hard_negative_fraction else []
        self.with_bright = [i for i, px in enumerate(self.bright_px) if len(px)]
        groups = groups or [0] * len(scenes)
        weights = np.array(opts.group_weights or [1.0] * (max(groups) + 1), dtype=np.float64)
        # One weight per data set of the source list; a set with no training sample (held out
        # whole by [data] source_roles) simply never draws.
        if len(weights) < max(groups) + 1:
            raise ValueError(f"{len(weights)} source weights for {max(groups) + 1} data sets")
        # Per-scene probability: the data set's weight shared among its scenes.
        counts = np.bincount(groups, minlength=len(weights))
        p = np.array([weights[g] / counts[g] for g in groups])
        if not p.sum() > 0:  # the sets with a weight hold no training sample (held out whole by source_roles)
            raise ValueError(f"source weights {[float(w) for w in weights]} give every training sample weight 0 "
                             f"(training samples come from data set(s) {sorted(set(groups))} only); "
                             "give one of those a weight > 0")
        self.scene_p = p / p.sum()
        # The draw among each set of candidate scenes, made once: (scene indices, their probabilities).
        self._draws = {name: self._conditional(ids) for name, ids in
                       (("vessel", self.with_vessels), ("bright", self.with_bright), ("any", range(len(scenes))))}
        # a patch kind whose scenes all have weight 0 is drawn as the other kinds are (uniformly placed)
        self.with_vessels = [int(i) for i in self._draws["vessel"][0]]
        self.with_bright = [int(i) for i in self._draws["bright"][0]]

    def _conditional(self, ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """The scenes of ``ids`` that may be drawn (weight > 0) and their probabilities: a set of
        weight 0 never draws, even where it alone has vessels (a draw among weights that are all 0
        would be NaN)."""
        ids = np.asarray([i for i in ids if self.scene_p[i] > 0], dtype=np.int64)
        p = self.scene_p[ids]
        return ids, p / p.sum() if len(ids) else p

    @staticmethod
    def _brightest_background(scene: SceneArrays, share: float = 0.005) -> np.ndarray:
        """Coordinates of the brightest ``share`` of pixels that are not within 3 px of a vessel."""
        intensity = scene.image.mean(axis=0)
        near_vessel = _dilate(scene.mask > 0, 3)
        values = np.where(near_vessel, -np.inf, intensity)
        cut = np.quantile(values[~near_vessel], 1 - share) if (~near_vessel).any() else np.inf
        return np.argwhere(values >= cut)

    @property
    def has_land(self) -> bool:
        """Whether any training scene has a sea/land mask (land supervision is possible)."""
        return any(s.land is not None for s in self.scenes)

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` patches: images (N, bands, P, P) float32 normalised, masks (N, 1, P, P) float32."""
        images, masks, _ = self.batch_with_land(size)
        return images, masks

    def batch_with_land(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`batch` and the patches' land masks (N, 1, P, P) float32: 1 land, 0 sea, and
        :data:`LAND_UNKNOWN` where the scene has no sea/land mask (left out of the land loss)."""
        images, masks, lands = [], [], []
        for _ in range(size):
            image, mask, land = self._one()
            images.append(image)
            masks.append(mask[None])
            lands.append(land[None])
        return np.stack(images), np.stack(masks).astype(np.float32), np.stack(lands).astype(np.float32)

    def _pick(self, draw: str) -> int:
        ids, p = self._draws[draw]
        return int(ids[self.rng.choice(len(ids), p=p)])

    def _one(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng, opts = self.rng, self.opts
        side = self.patch
        if "scale" in opts.augment:
            side = int(round(self.patch * rng.uniform(0.8, 1.25)))
        u = rng.random()
        if self.with_vessels and u < opts.vessel_fraction:
            i = self._pick("vessel")
            centre = self.vessel_px[i][rng.integers(len(self.vessel_px[i]))]
        elif self.with_bright and u < opts.vessel_fraction + opts.hard_negative_fraction:
            i = self._pick("bright")
            centre = self.bright_px[i][rng.integers(len(self.bright_px[i]))]
        else:
            i = self._pick("any")
            centre = None
        h, w = self.scenes[i].mask.shape
        # A scene smaller than the patch is cut whole (hs x ws) and padded below and to the right,
        # as the runtime pads an edge tile: normalised image 0, no vessel, land unknown.
        hs, ws = min(side, h), min(side, w)
        if centre is not None:
            y, x = centre
            top = int(np.clip(y - rng.integers(hs), 0, h - hs))
            left = int(np.clip(x - rng.integers(ws), 0, w - ws))
        else:
            top, left = int(rng.integers(h - hs + 1)), int(rng.integers(w - ws + 1))
        counts = self.scenes[i].image[:, top : top + hs, left : left + ws].astype(np.float32)
        mask = self.scenes[i].mask[top : top + hs, left : left + ws]
        scene_land = self.scenes[i].land
        land = (np.full_like(mask, LAND_UNKNOWN) if scene_land is None
                else scene_land[top : top + hs, left : left + ws])
        valid = None
        if (hs, ws) != (side, side):
            pad = ((0, side - hs), (0, side - ws))
            counts = np.pad(counts, ((0, 0), *pad))
            mask, land = np.pad(mask, pad), np.pad(land, pad, constant_values=LAND_UNKNOWN)
            valid = np.pad(np.ones((hs, ws), dtype=bool), pad)
        if side != self.patch:  # nearest resampling keeps the masks binary and the counts real
            idx = (np.arange(self.patch) * side / self.patch).astype(int)
            counts, mask, land = counts[:, idx][:, :, idx], mask[idx][:, idx], land[idx][:, idx]
            valid = None if valid is None else valid[idx][:, idx]
        counts = self._photometric(counts, self.scenes[i].image.dtype)
        image = self.norm.apply(counts)
        if valid is not None:
            image[:, ~valid] = 0.0
        if "rot90" in opts.augment:
            k = int(rng.integers(4))
            image, mask, land = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k), np.rot90(land, k)
        if "flip" in opts.augment and rng.random() < 0.5:
            image, mask, land = image[:, :, ::-1], mask[:, ::-1], land[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask), np.ascontiguousarray(land)

    def _photometric(self, counts: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Gain, contrast and speckle on raw counts (float32), clipped to the range of the scene's
        count type ``dtype``: of the scene, not of the patch, whose own maximum would make a dark
        patch of a uint16 scene an 8-bit one (gain clipped at 255, another contrast curve)."""
        rng, augment = self.rng, self.opts.augment
        if not {"gain", "contrast", "speckle"} & set(augment):
            return counts
        dtype = np.dtype(dtype)
        top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else (65535.0 if counts.max() > 255 else 255.0)
        if "contrast" in augment:
            counts = top * (counts / top) ** rng.uniform(0.7, 1.4)
        if "gain" in augment:
            counts = counts * rng.uniform(0.7, 1.3)
        if "speckle" in augment and rng.random() < 0.5:
            looks = rng.uniform(4.0, 16.0)  # unit-mean gamma: the multiplicative noise of SAR amplitude
            counts = counts * rng.gamma(looks, 1.0 / looks, counts.shape[1:]).astype(np.float32)
        return np.clip(counts, 0.0, top).astype(np.float32)
