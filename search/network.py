"""A genome as a torch network, whose forward pass can run the target's way.

:class:`GenomeNet` builds the encoder from the genome's blocks and a U-Net decoder (upsample,
concatenate the skip taken before each stride-2 block, one conv-bn-relu to the skip's width), then a
1x1 head and a sigmoid. Only ops the Myriad X toolchain runs (opset <= 10 after
:func:`search.export_ir.export_genome_net`); see :mod:`search.space` for the library.

Every layer has two forward passes:

* FP32 (``net.aligner is None``): the ordinary torch computation, BatchNorm in its current mode;
* deployment-aligned (``net.aligner`` set, :mod:`search.align`): what the exported IR computes on the
  target. BatchNorm is folded into the convolution with its running statistics (frozen, as the
  exporter folds it), the folded weight and bias are projected as the IR stores them, and every op
  result the device stores is projected: convolution, bias Add, Clamp (ReLU6), Add (residual),
  ReduceMean, Sigmoid, Multiply, Interpolate. ReLU, Concat and the nearest copy only move values,
  which are representable already (the twin skips them for the same reason). A bilinear upsampling
  runs with the coordinate mode the target runs (``Aligner.interpolate_mode``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search.align import Aligner
from search.space import (SE_MIN_CHANNELS, SE_REDUCTION, UPSAMPLINGS, WIDE_GATE_CHANNELS, WIDE_GATE_LAYERS,
                          BlockGene, Genome)


class Ctx:
    """Shared by all layers of a net: the aligner of the forward pass, or None for FP32."""

    def __init__(self) -> None:
        self.aligner: Aligner | None = None


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU or ReLU6): Convolution, Add and the activation in the IR."""

    def __init__(self, ctx: Ctx, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = "relu"):
        super().__init__()
        if act not in (None, "relu", "relu6"):
            raise ValueError(f"act {act!r}; valid: [None, 'relu', 'relu6']")
        self.ctx, self.act, self.stride, self.groups = ctx, act, stride, groups
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.ctx.aligner
        if a is None:
            y = self.bn(self.conv(x))
        else:
            w, b = (a.weight(t) for t in self.folded())
            y = a.conv2d(x, w, self.stride, self.conv.padding[0], self.groups)
            y = a.act(y + b[None, :, None, None])
        if self.act == "relu":
            return F.relu(y)
        if self.act == "relu6":
            y = F.relu6(y)
            return y if a is None else a.act(y)
        return y

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The convolution's weight and bias with the BatchNorm (eval statistics) folded in, in f32,
        as OpenVINO folds them on export: gamma times the reciprocal square root (torch.rsqrt, an IEEE
        square root then an IEEE division), so that the aligned pass holds the IR's weights bit for bit.
        gamma / sqrt differs from that by an f32 ulp in up to half the weights of a layer, and after the FP16
        rounding in about one in a thousand (found on an AMD EPYC host: tests/search/test_align.py)."""
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return self.conv.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale


class Conv1x1Bias(nn.Module):
    """1x1 convolution with bias (squeeze-excitation, head): Convolution + Add in the IR."""

    def __init__(self, ctx: Ctx, cin: int, cout: int):
        super().__init__()
        self.ctx = ctx
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.ctx.aligner
        if a is None:
            return self.conv(x)
        y = a.conv2d(x, a.weight(self.conv.weight))
        return a.act(y + a.weight(self.conv.bias)[None, :, None, None])


def _act(ctx: Ctx, x: torch.Tensor) -> torch.Tensor:
    return x if ctx.aligner is None else ctx.aligner.act(x)


class Block(nn.Module):
    """One encoder block of the library (``BlockGene.kind``)."""

    def __init__(self, ctx: Ctx, gene: BlockGene, cin: int):
        super().__init__()
        self.ctx, self.kind = ctx, gene.kind
        w, s = gene.width, gene.stride
        self.residual = False
        if gene.kind == "conv":
            self.body = nn.Sequential(ConvBN(ctx, cin, w, 3, s))
        elif gene.kind == "dwsep":
            self.body = nn.Sequential(ConvBN(ctx, cin, cin, 3, s, groups=cin), ConvBN(ctx, cin, w, 1))
        elif gene.kind == "mbconv":
            h = cin * gene.expansion
            self.body = nn.Sequential(ConvBN(ctx, cin, h, 1, act="relu6"), ConvBN(ctx, h, h, 3, s, groups=h, act="relu6"),
                                      ConvBN(ctx, h, w, 1, act=None))
            self.residual = s == 1 and cin == w
        elif gene.kind == "residual":
            self.body = nn.Sequential(ConvBN(ctx, cin, w, 3, s), ConvBN(ctx, w, w, 3, act=None))
            self.skip = ConvBN(ctx, cin, w, 1, s, act=None) if (s != 1 or cin != w) else None
        elif gene.kind == "se":
            r = max(SE_MIN_CHANNELS, w // SE_REDUCTION)
            self.body = nn.Sequential(ConvBN(ctx, cin, w, 3, s))
            self.squeeze, self.excite = Conv1x1Bias(ctx, w, r), Conv1x1Bias(ctx, r, w)
        else:
            raise ValueError(f"block kind {gene.kind!r}; valid: conv, dwsep, mbconv, residual, se")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.kind == "mbconv" and self.residual:
            y = _act(self.ctx, y + x)
        elif self.kind == "residual":
            y = F.relu(_act(self.ctx, y + (x if self.skip is None else self.skip(x))))
        elif self.kind == "se":
            g = _act(self.ctx, y.mean(dim=(2, 3), keepdim=True))
            g = _act(self.ctx, torch.sigmoid(self.excite(F.relu(self.squeeze(g)))))
            y = _act(self.ctx, y * g)
        return y


def _copy2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest 2x as a copy (Unsqueeze/Broadcast/Reshape in the IR, no Interpolate)."""
    return _copy_up(x, 2)


def _cell_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over ``k`` x ``k`` cells as a Reshape and a ReduceMean: opset-1 ops, where avg_pool2d
    exports as an opset-14 AvgPool that the 2022.3 toolkit rejects."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // k, k, w // k, k).mean(dim=(3, 5))


def _copy_up(x: torch.Tensor, k: int) -> torch.Tensor:
    """Nearest ``k``x as a copy (Unsqueeze/Broadcast/Reshape in the IR, no Interpolate)."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, k, w, k).reshape(b, c, k * h, k * w)


def _linear2x_asymmetric(x: torch.Tensor) -> torch.Tensor:
    """Linear 2x with asymmetric coordinates (source = dest / 2, edge clamped), axis by axis."""
    def axis(t: torch.Tensor, dim: int) -> torch.Tensor:
        nxt = torch.cat([t.narrow(dim, 1, t.shape[dim] - 1), t.narrow(dim, t.shape[dim] - 1, 1)], dim)
        mid = (t + nxt) * 0.5
        return torch.stack([t, mid], dim + 1).flatten(dim, dim + 1)
    return axis(axis(x, 2), 3)


class Upsample2x(nn.Module):
    """The decoder's 2x upsampling: ``nearest`` (a copy), ``bilinear`` (torch's half_pixel, which
    the Myriad X may remap: a hypothesis, profiles.toml) or ``bilinear_corners`` (align_corners,
    a mode the VPU runs natively, so its device semantics are not in doubt)."""

    #: upsample name -> the Interpolate coordinate mode its IR carries
    COORDINATES = {"bilinear": "pytorch_half_pixel", "bilinear_corners": "align_corners"}

    def __init__(self, ctx: Ctx, mode: str):
        super().__init__()
        if mode not in UPSAMPLINGS:
            raise ValueError(f"upsample {mode!r}; valid: {list(UPSAMPLINGS)}")
        self.ctx, self.mode = ctx, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "nearest":
            return _copy2x(x)
        a = self.ctx.aligner
        written = self.COORDINATES[self.mode]
        coordinate = written if a is None else a.interpolate_mode("linear_onnx", written)
        if coordinate in ("half_pixel", "pytorch_half_pixel"):
            y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        elif coordinate == "asymmetric":
            y = _linear2x_asymmetric(x)
        elif coordinate == "align_corners":
            y = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            raise ValueError(f"the target runs linear Interpolate as {coordinate!r}; valid here: "
                             "['half_pixel', 'asymmetric', 'align_corners']")
        return _act(self.ctx, y)


#: Land gates of :class:`GenomeNet` (``[train] land_gate``): none, per pixel, per pixel and cell,
#: per pixel and neighbourhood of cells, and the last with the input's texture per cell too.
LAND_GATES = ("none", "local", "context", "wide", "wide_texture")
#: What the vessel loss of a gated network is computed on (``[train] gate_loss``): the vessel head's
#: probability, or the flown output (vessel x sea: :meth:`GenomeNet.flown_logits`).
GATE_LOSSES = ("vessel", "flown")
#: Side in pixels of the cells the "context" and "wide" gates average over (tiles and patches are
#: multiples).
GATE_CELL = 16
#: The gates that average over :data:`GATE_CELL` px cells: their tiles and patches must be multiples.
CELL_GATES = ("context", "wide", "wide_texture")


def check_land_settings(train: dict[str, Any], land_masks: str, table: str = "train") -> None:
    """``[train] land_gate`` and ``gate_loss`` (``train`` is that table, named ``table`` in the
    messages) each one of its choices, ``land_focus`` >= 0, and a flown gate only with a land loss to learn from
    (``land_weight`` > 0 and ``[data] land_masks``): else a ValueError listing what is valid."""
    if train["land_gate"] not in LAND_GATES:
        raise ValueError(f"[{table}] land_gate {train['land_gate']!r}; valid: {list(LAND_GATES)}")
    if train["gate_loss"] not in GATE_LOSSES:
        raise ValueError(f"[{table}] gate_loss {train['gate_loss']!r}; valid: {list(GATE_LOSSES)}")
    if not float(train["land_focus"]) >= 0:
        raise ValueError(f"[{table}] land_focus {train['land_focus']!r}; valid: a number >= 0 (0: every labelled "
                         f"pixel alike)")
    if train["land_gate"] != "none" and not (float(train["land_weight"]) > 0 and land_masks):
        raise ValueError(f"[{table}] land_gate = {train['land_gate']!r} needs sea/land masks to learn from: "
                         f"[{table}] land_weight > 0 (is {train['land_weight']}) and [data] land_masks set "
                         f"(is {land_masks!r})")


class GenomeNet(nn.Module):
    """The encoder-decoder of a genome; :attr:`aligner` switches the forward pass to the target's.

    ``land_gate`` (one of :data:`LAND_GATES`): ``"local"``: a second 1x1 head on the decoder's last
    features gives the probability that a pixel is sea, and the output is the vessel probability
    times it, so a payload drops vessel pixels it judges to be on land without a coastline database
    (``[train] land_gate``; taught by sea/land masks in :func:`search.train.fit`). In the IR that
    is a Convolution, a Sigmoid and a Multiply; the network keeps one output. ``"context"``: the sea
    logit also gets a term from the same features averaged over :data:`GATE_CELL` px cells (a
    Reshape and a ReduceMean, a 1x1 Convolution and a copy back to full size), since land is a
    property of a neighbourhood more than of a pixel. ``"wide"``: as ``"context"``, but the cell
    averages go through :data:`WIDE_GATE_LAYERS` 3x3 conv-bn-relu layers on the cell grid before
    their 1x1 head, so each cell's land term sees its neighbours (80 px) for a few thousand
    parameters on a 16 x 16 grid. ``"wide_texture"``: as ``"wide"``, with the mean and the mean
    square of the input per cell beside the cell means of the features (a Multiply and two
    ReduceMeans on the input), since SAR land is told from sea by its brightness and its variance
    over a neighbourhood, which a small vessel network need not keep in its features (measured
    worse than ``"wide"`` over three seeds: docs/models.md). All work on full-size maps, which the
    Myriad X cost model prices at about 1.8 ms per 256 px tile for ``"local"``, 3.4 ms for
    ``"context"``, 3.5 ms for ``"wide"`` and 5.0 ms for ``"wide_texture"`` (docs/models.md)."""

    def __init__(self, genome: Genome, land_gate: str = "none"):
        super().__init__()
        self.genome = genome
        self.ctx = Ctx()
        self.blocks = nn.ModuleList()
        cin = genome.in_channels
        skips: list[int] = []
        for gene in genome.blocks:
            if gene.stride == 2:
                skips.append(cin)
            self.blocks.append(Block(self.ctx, gene, cin))
            cin = gene.width
        self.up = Upsample2x(self.ctx, genome.upsample)
        self.decoder = nn.ModuleList()
        for skip in reversed(skips):
            self.decoder.append(ConvBN(self.ctx, cin + skip, skip, 3))
            cin = skip
        self.head = Conv1x1Bias(self.ctx, cin, 1)
        if land_gate not in LAND_GATES:
            raise ValueError(f"land_gate {land_gate!r}; valid: {list(LAND_GATES)}")
        # Its logit is "sea", so the exported gate needs no negation; land is its negative.
        self.land_gate = land_gate
        self.sea_head = Conv1x1Bias(self.ctx, cin, 1) if land_gate != "none" else None
        self.sea_context: nn.Module | None = None
        if land_gate == "context":
            self.sea_context = Conv1x1Bias(self.ctx, cin, 1)
        elif land_gate in ("wide", "wide_texture"):
            texture = 2 * genome.in_channels if land_gate == "wide_texture" else 0
            widths = [cin + texture] + [WIDE_GATE_CHANNELS] * WIDE_GATE_LAYERS
            self.sea_context = nn.Sequential(*(ConvBN(self.ctx, a, b, 3) for a, b in zip(widths, widths[1:])),
                                             Conv1x1Bias(self.ctx, widths[-1], 1))

    @property
    def aligner(self) -> Aligner | None:
        return self.ctx.aligner

    @aligner.setter
    def aligner(self, value: Aligner | None) -> None:
        self.ctx.aligner = value

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's last feature map, the vessel head's input (and, in training with land
        supervision, the land head's: :func:`search.train.fit`)."""
        if self.ctx.aligner is not None:
            x = self.ctx.aligner.input(x)
        skips = []
        for gene, block in zip(self.genome.blocks, self.blocks):
            if gene.stride == 2:
                skips.append(x)
            x = block(x)
        for dec in self.decoder:
            x = dec(torch.cat([self.up(x), skips.pop()], dim=1))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sea_head is None:
            return _act(self.ctx, torch.sigmoid(self.logits(x)))
        features = self.features(x)
        vessel = _act(self.ctx, torch.sigmoid(self.head(features)))
        sea = _act(self.ctx, torch.sigmoid(self.sea_logits(features, x)))
        return _act(self.ctx, vessel * sea)

    def flown_logits(self, vessel_logits: torch.Tensor, sea_logits: torch.Tensor) -> torch.Tensor:
        """Logit of the flown output, vessel probability x sea probability, from the two heads'
        logits (:attr:`head`, :meth:`sea_logits`), for a loss on what the payload thresholds
        (``[train] gate_loss = "flown"``); in log space, so that a product near 0 or 1 keeps its
        gradient. Aligned (``aligner`` set), the product as the target stores it (:meth:`forward`),
        its logit taken with the probability kept off 0 and 1."""
        if self.ctx.aligner is not None:
            vessel = _act(self.ctx, torch.sigmoid(vessel_logits))
            sea = _act(self.ctx, torch.sigmoid(sea_logits))
            return torch.logit(_act(self.ctx, vessel * sea), eps=1e-6)
        log_p = F.logsigmoid(vessel_logits) + F.logsigmoid(sea_logits)
        # log(1 - p) = log(-expm1(log p)); log p < 0 always, clamped off 0 where float32 rounds to 1
        return log_p - torch.log(-torch.expm1(log_p.clamp(max=-1e-6)))

    def sea_logits(self, features: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logit of "this pixel is sea" (the land gate's), from the decoder's last features (and,
        for ``"wide_texture"``, from the network's input ``x``, which it then needs)."""
        logits = self.sea_head(features)
        if self.sea_context is not None:
            cells = _act(self.ctx, _cell_mean(features, GATE_CELL))
            if self.land_gate == "wide_texture":
                cells = torch.cat([cells, self.input_texture(x)], dim=1)
            logits = _act(self.ctx, logits + _copy_up(self.sea_context(cells), GATE_CELL))
        return logits

    def shift_sea(self, shift: float) -> None:
        """Lower the land gate's sea logit by ``shift`` everywhere (``[export] sea_shift``), folded
        into the sea head's bias so that the exported graph does not change.

        Raises:
            ValueError: for a non-zero shift on a network without a land gate.
        """
        if not shift:
            return
        if self.sea_head is None:
            raise ValueError(f"[export] sea_shift = {shift} needs a land gate; [train] land_gate is 'none' "
                             f"(valid: {[g for g in LAND_GATES if g != 'none']})")
        with torch.no_grad():
            self.sea_head.conv.bias -= shift

    def input_texture(self, x: torch.Tensor | None) -> torch.Tensor:
        """Per :data:`GATE_CELL` cell of the input: its mean and its mean square per band (the
        ``"wide_texture"`` gate's extra cell channels), as the target computes them."""
        if x is None:
            raise ValueError(f"the {self.land_gate!r} land gate reads the input: pass it to sea_logits")
        if self.ctx.aligner is not None:
            x = self.ctx.aligner.input(x)
        mean = _act(self.ctx, _cell_mean(x, GATE_CELL))
        square = _act(self.ctx, _cell_mean(_act(self.ctx, x * x), GATE_CELL))
        return torch.cat([mean, square], dim=1)
