"""The search space: a typed, readable, hashable genome of up to 6 blocks, and its variation operators.

A :class:`Genome` is a single-path encoder of :class:`BlockGene` (kind, width, stride, expansion)
plus the decoder's upsampling; :mod:`search.network` turns it into a U-shaped encoder-decoder. The
genome is a frozen dataclass of tuples, so it is hashable, cannot be changed in place, and
crossover or mutation can only ever build a *new* genome: parents are never aliased. Its
:attr:`Genome.key` (sha256 of its canonical JSON) names a candidate on disk and in the cache.

Constraints are checked before any weight is allocated (:func:`violations`): block count, gene
choices, strides (block 0 keeps full resolution, so every skip has a learned width), the export tile
divisible by the total stride, and the parameter budget, counted analytically with the land gate
the genome is trained with (:func:`count_parameters`; tests check it equals torch's count). The
block library is the set of kinds whose exported IR the Myriad X runs (``tests/search/test_space.py``
exports each and runs ``runtime.check.check_model(..., "MYRIAD")``; an error there would be a bug
in the library).
Choices live in ``search/defaults.toml``, table ``[space]``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: Block kinds: conv-bn-act; depthwise separable; inverted residual with expansion (MobileNetV2);
#: residual (two 3x3, ResNet basic block); conv with squeeze-excitation (ReduceMean, two 1x1, Sigmoid).
BLOCK_KINDS = ("conv", "dwsep", "mbconv", "residual", "se")
#: Decoder upsampling: a nearest copy (Broadcast/Reshape, native everywhere); torch's bilinear with
#: half_pixel coordinates (Interpolate, remapped by the Myriad X to asymmetric under fp16-myriadx, run
#: as written under myriadx-native-interp: which is true is not known, so the default search space
#: leaves it out; the ablation uses it); bilinear with align_corners (native on the VPU).
UPSAMPLINGS = ("nearest", "bilinear", "bilinear_corners")
SE_REDUCTION = 4
SE_MIN_CHANNELS = 4


@dataclass(frozen=True)
class BlockGene:
    """One encoder block. ``expansion`` matters only to ``mbconv`` and is 1 for the others."""

    kind: str
    width: int
    stride: int = 1
    expansion: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "width": self.width, "stride": self.stride, "expansion": self.expansion}

    def __str__(self) -> str:
        s = f"{self.kind}{self.width}"
        if self.kind == "mbconv":
            s += f"e{self.expansion}"
        return s + ("/2" if self.stride == 2 else "")


@dataclass(frozen=True)
class Genome:
    """A network: encoder blocks in order, the decoder's upsampling, and the number of input bands."""

    blocks: tuple[BlockGene, ...]
    upsample: str = "nearest"
    in_channels: int = 3

    @property
    def downsamples(self) -> int:
        return sum(1 for b in self.blocks if b.stride == 2)

    @property
    def stride(self) -> int:
        """Tiles must be a multiple of this."""
        return 2**self.downsamples

    @property
    def key(self) -> str:
        """Stable identity: the first 16 hex digits of the sha256 of the canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """JSON form, recorded as a bundle manifest's ``genome``."""
        return {"family": "blocks-unet", "blocks": [b.to_dict() for b in self.blocks],
                "upsample": self.upsample, "in_channels": self.in_channels}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Genome:
        """Inverse of :meth:`to_dict` (``family`` is optional). ``{"family": "unet", "widths": [...]}``,
        the hand-designed U-Net's description, is read as its blocks (:func:`unet_genome`)."""
        family = data.get("family", "blocks-unet")
        if family == "unet":
            return unet_genome(data["widths"], int(data.get("in_channels", 3)))
        if family != "blocks-unet":
            raise ValueError(f"genome family {family!r}; valid: {list(FAMILIES)}")
        blocks = tuple(BlockGene(str(b["kind"]), int(b["width"]), int(b.get("stride", 1)),
                                 int(b.get("expansion", 1))) for b in data["blocks"])
        return cls(blocks, str(data.get("upsample", "nearest")), int(data.get("in_channels", 3)))

    def __str__(self) -> str:
        return "-".join(str(b) for b in self.blocks) + f"|{self.upsample}"


#: Genome families a manifest may name: the search's blocks-U-Net, and the hand-designed U-Net,
#: which is one fixed genome of it.
FAMILIES = ("blocks-unet", "unet")


def unet_genome(widths: list[int] | tuple[int, ...], in_channels: int = 3) -> Genome:
    """The hand-designed baseline U-Net as a genome: per resolution level two conv-bn-relu blocks of
    that level's width, the first strided (except at full resolution), and the nearest-neighbour
    decoder. Same layers and parameter count as the U-Net of the first models (82,801 for widths
    16, 24, 32, 32), so the baseline and the candidates share one network code, one training loop
    and one exporter."""
    widths = [int(w) for w in widths]
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ValueError(f"widths needs at least 2 positive levels (got {widths})")
    blocks = [BlockGene("conv", w, 1 if level == 0 else stride)
              for level, w in enumerate(widths) for stride in (2, 1)]
    return Genome(tuple(blocks), "nearest", int(in_channels))


@dataclass(frozen=True)
class SpaceConfig:
    """The choices and limits of the space (table ``[space]`` of ``search/defaults.toml``)."""

    max_blocks: int
    min_blocks: int
    kinds: tuple[str, ...]
    widths: tuple[int, ...]
    expansions: tuple[int, ...]
    upsamplings: tuple[str, ...]
    max_downsamples: int
    max_parameters: int
    tile: int
    in_channels: int = 3  # the data's bands, [model] in_channels: every genome drawn takes that many
    #: The land gates the genomes are trained with ([train] land_gate, and [final.train]'s when there
    #: is a final training): the budget holds for the largest network they make, the one that flies.
    land_gates: tuple[str, ...] = ("none",)

    @classmethod
    def from_dict(cls, data: dict[str, Any], tile: int, in_channels: int = 3,
                  land_gates: tuple[str, ...] = ("none",)) -> SpaceConfig:
        """The space of table ``[space]``, for tiles of ``tile`` px, ``in_channels`` bands and networks
        trained with each of ``land_gates``.

        Raises:
            ValueError: naming the setting and what is valid.
        """
        cfg = cls(int(data["max_blocks"]), int(data["min_blocks"]), tuple(data["kinds"]),
                  tuple(int(w) for w in data["widths"]), tuple(int(e) for e in data["expansions"]),
                  tuple(data["upsamplings"]), int(data["max_downsamples"]), int(data["max_parameters"]), tile,
                  int(in_channels), tuple(land_gates))
        for key, values in (("widths", cfg.widths), ("expansions", cfg.expansions)):
            if not values or min(values) < 1:  # a width or expansion of 0 divides by zero when counted
                raise ValueError(f"[space] {key} {list(values)}; valid: a non-empty list of positive integers")
        for kind in cfg.kinds:
            if kind not in BLOCK_KINDS:
                raise ValueError(f"[space] kinds: {kind!r} is not a block kind; valid: {list(BLOCK_KINDS)}")
        for up in cfg.upsamplings:
            if up not in UPSAMPLINGS:
                raise ValueError(f"[space] upsamplings: {up!r}; valid: {list(UPSAMPLINGS)}")
        if not 1 <= cfg.min_blocks <= cfg.max_blocks <= 6:
            raise ValueError(f"[space] needs 1 <= min_blocks <= max_blocks <= 6 (got {cfg.min_blocks}, {cfg.max_blocks})")
        return cfg

    @property
    def max_stride(self) -> int:
        """The largest total stride a genome of the space has (:func:`violations`' rules): a factor 2
        per downsampling, at most ``max_downsamples`` and one per block after block 0 (which keeps
        full resolution), and a divisor of the tile."""
        stride = 2 ** max(0, min(self.max_downsamples, self.max_blocks - 1))
        while self.tile % stride:
            stride //= 2
        return stride


# -- parameter count, without allocating anything ----------------------------------------------------


#: Channels and 3x3 layers of the "wide" land gate's convolutions on its 16 px cell grid
#: (:class:`search.network.GenomeNet`): two layers see 5 x 5 cells, 80 px, since land in SAR is the
#: texture of a neighbourhood more than the mean of one cell.
WIDE_GATE_CHANNELS = 16
WIDE_GATE_LAYERS = 2


def _cba(cin: int, cout: int, k: int, groups: int = 1) -> int:
    """Conv (no bias) + BatchNorm (weight, bias)."""
    return cin // groups * cout * k * k + 2 * cout


def block_parameters(gene: BlockGene, cin: int) -> int:
    """Trainable parameters of one block (must match :mod:`search.network`)."""
    w = gene.width
    if gene.kind == "conv":
        return _cba(cin, w, 3)
    if gene.kind == "dwsep":
        return _cba(cin, cin, 3, cin) + _cba(cin, w, 1)
    if gene.kind == "mbconv":
        h = cin * gene.expansion
        return _cba(cin, h, 1) + _cba(h, h, 3, h) + _cba(h, w, 1)
    if gene.kind == "residual":
        skip = _cba(cin, w, 1) if (gene.stride != 1 or cin != w) else 0
        return _cba(cin, w, 3) + _cba(w, w, 3) + skip
    if gene.kind == "se":
        r = max(SE_MIN_CHANNELS, w // SE_REDUCTION)
        return _cba(cin, w, 3) + (w * r + r) + (r * w + w)
    raise ValueError(f"block kind {gene.kind!r}; valid: {list(BLOCK_KINDS)}")


def count_parameters(genome: Genome, land_gate: str = "none") -> int:
    """Trainable parameters of the network :mod:`search.network` builds for ``genome`` (with the
    sea head of ``land_gate``: :class:`search.network.GenomeNet`)."""
    total, cin = 0, genome.in_channels
    skips: list[int] = []
    for gene in genome.blocks:
        if gene.stride == 2:
            skips.append(cin)
        total += block_parameters(gene, cin)
        cin = gene.width
    for skip in reversed(skips):  # decoder: upsample, concatenate the skip, conv-bn-relu to its width
        total += _cba(cin + skip, skip, 3)
        cin = skip
    # the vessel head, the gate's sea head, and the context gate's cell head (search.network.LAND_GATES)
    heads = 1 + (land_gate != "none") + (land_gate == "context")
    if land_gate in ("wide", "wide_texture"):  # the wide gate's 3x3 layers on the cell grid, their 1x1 head
        texture = 2 * genome.in_channels if land_gate == "wide_texture" else 0  # input mean, mean square
        widths = [cin + texture] + [WIDE_GATE_CHANNELS] * WIDE_GATE_LAYERS
        total += sum(_cba(a, b, 3) for a, b in zip(widths, widths[1:])) + widths[-1] + 1
    return total + (cin + 1) * heads  # 1x1 heads with bias


def violations(genome: Genome, space: SpaceConfig, within_space: bool = True) -> list[str]:
    """Every constraint ``genome`` breaks (empty: valid). Nothing is allocated.

    ``within_space=False`` keeps only what any network must satisfy to be built, exported and
    flown (known block kinds and upsamplings, strides, the tile, the parameter budget), not the
    search's own choices (block count, widths, expansions, downsamplings): for a genome given by
    hand, such as the baseline U-Net's, to an ablation."""
    out = []
    n = len(genome.blocks)
    kinds = space.kinds if within_space else BLOCK_KINDS
    if not n:  # within the space or not: the decoder needs an encoder to read
        out.append("no blocks; a network needs at least one")
    elif within_space and not space.min_blocks <= n <= space.max_blocks:
        out.append(f"{n} blocks; valid: {space.min_blocks}..{space.max_blocks}")
    for i, b in enumerate(genome.blocks):
        if b.kind not in kinds:
            out.append(f"block {i}: kind {b.kind!r}; valid: {list(kinds)}")
        if within_space and b.width not in space.widths:
            out.append(f"block {i}: width {b.width}; valid: {list(space.widths)}")
        if b.width < 1:
            out.append(f"block {i}: width {b.width}; must be positive")
        if b.stride not in (1, 2):
            out.append(f"block {i}: stride {b.stride}; valid: [1, 2]")
        if b.kind == "mbconv" and (b.expansion not in space.expansions if within_space else b.expansion < 1):
            out.append(f"block {i}: expansion {b.expansion}; valid: {list(space.expansions)}")
        if b.kind != "mbconv" and b.expansion != 1:
            out.append(f"block {i}: expansion {b.expansion} on a {b.kind} block; valid: [1]")
    if genome.blocks and genome.blocks[0].stride != 1:
        out.append("block 0 must have stride 1 (the full-resolution skip needs learned features)")
    if within_space and genome.downsamples > space.max_downsamples:
        out.append(f"{genome.downsamples} downsamplings; at most {space.max_downsamples}")
    if space.tile % genome.stride:
        out.append(f"tile {space.tile} is not a multiple of the total stride {genome.stride}")
    upsamplings = space.upsamplings if within_space else UPSAMPLINGS
    if genome.upsample not in upsamplings:
        out.append(f"upsample {genome.upsample!r}; valid: {list(upsamplings)}")
    if not out:
        # counted with the gate it is trained with (the largest when the final training's differs)
        n_params, gate = max((count_parameters(genome, g), g) for g in space.land_gates)
        if n_params > space.max_parameters:
            out.append(f"{n_params} parameters" + (f" with land gate {gate!r}" if gate != "none" else "")
                       + f"; the budget is {space.max_parameters}")
    return out


def check_genome(genome: Genome, space: SpaceConfig, within_space: bool = True) -> Genome:
    """``genome`` if valid (see :func:`violations`); raises ValueError listing every violation otherwise."""
    problems = violations(genome, space, within_space)
    if problems:
        raise ValueError(f"invalid genome {genome}: " + "; ".join(problems))
    return genome


# -- variation ------------------------------------------------------------------------------------


def _random_gene(rng: np.random.Generator, space: SpaceConfig, stride: int) -> BlockGene:
    kind = str(rng.choice(space.kinds))
    expansion = int(rng.choice(space.expansions)) if kind == "mbconv" else 1
    return BlockGene(kind, int(rng.choice(space.widths)), stride, expansion)


def random_genome(rng: np.random.Generator, space: SpaceConfig, max_tries: int = 1000) -> Genome:
    """A uniformly drawn valid genome (rejection sampling)."""
    for _ in range(max_tries):
        n = int(rng.integers(space.min_blocks, space.max_blocks + 1))
        strides = [1] + [int(rng.integers(1, 3)) for _ in range(n - 1)]
        genome = Genome(tuple(_random_gene(rng, space, s) for s in strides), str(rng.choice(space.upsamplings)),
                        space.in_channels)
        if not violations(genome, space):
            return genome
    raise ValueError(f"no valid genome found in {max_tries} draws; the space is too tight: {space}")


MUTATIONS = ("kind", "width", "stride", "expansion", "add", "remove", "upsample")


def _mutate_once(genome: Genome, rng: np.random.Generator, space: SpaceConfig) -> Genome:
    blocks = list(genome.blocks)
    op = str(rng.choice(MUTATIONS))
    i = int(rng.integers(len(blocks)))
    if op == "kind":
        kind = str(rng.choice(space.kinds))
        blocks[i] = replace(blocks[i], kind=kind,
                            expansion=int(rng.choice(space.expansions)) if kind == "mbconv" else 1)
    elif op == "width":
        blocks[i] = replace(blocks[i], width=int(rng.choice(space.widths)))
    elif op == "stride" and i > 0:
        blocks[i] = replace(blocks[i], stride=3 - blocks[i].stride)
    elif op == "expansion" and blocks[i].kind == "mbconv":
        blocks[i] = replace(blocks[i], expansion=int(rng.choice(space.expansions)))
    elif op == "add" and len(blocks) < space.max_blocks:
        at = int(rng.integers(1, len(blocks) + 1))
        blocks.insert(at, _random_gene(rng, space, int(rng.integers(1, 3))))
    elif op == "remove" and len(blocks) > space.min_blocks:
        del blocks[max(1, i) if len(blocks) > 1 else 0]
        blocks[0] = replace(blocks[0], stride=1)
    elif op == "upsample":
        return replace(genome, upsample=str(rng.choice(space.upsamplings)))
    return Genome(tuple(blocks), genome.upsample, genome.in_channels)


def mutate(genome: Genome, rng: np.random.Generator, space: SpaceConfig, max_tries: int = 100) -> Genome:
    """A valid genome differing from ``genome`` by one mutation (the parent is immutable)."""
    for _ in range(max_tries):
        child = _mutate_once(genome, rng, space)
        if child != genome and not violations(child, space):
            return child
    return genome


def crossover(a: Genome, b: Genome, rng: np.random.Generator, space: SpaceConfig, max_tries: int = 100) -> Genome:
    """One-point crossover of the block lists (head of ``a``, tail of ``b``), upsampling from either.

    Returns a new valid genome, or a copy of ``a`` when no cut gives a valid child.
    """
    for _ in range(max_tries):
        i = int(rng.integers(1, len(a.blocks) + 1))
        j = int(rng.integers(0, len(b.blocks) + 1))
        blocks = (a.blocks[:i] + b.blocks[j:])[: space.max_blocks]
        child = Genome(blocks, a.upsample if rng.random() < 0.5 else b.upsample, a.in_channels)
        if not violations(child, space):
            return child
    return Genome(a.blocks, a.upsample, a.in_channels)
