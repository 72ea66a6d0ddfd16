"""The segmentation network: a small U-Net built only from ops the Myriad X toolchain accepts.

The network is described by a :class:`NetConfig` of channel widths so that the evolutionary search
can vary it; the fixed baseline is one such config (``search/defaults.toml``, table ``[model]``).

Deployment constraints shape every choice here (see ``/work/shared/reference/myriadx.md``):

* no ``F.interpolate`` / ``nn.Upsample``: they export as Interpolate-11, which the OpenVINO 2022.3
  MYRIAD toolkit rejects, and its coordinate modes are remapped on the device anyway. Upsampling is a
  nearest-neighbour copy written as expand + reshape (Unsqueeze/Broadcast/Reshape, opset <= 3);
* no ConvTranspose (unsupported on the VPU) and no dilation (runs on the SHAVEs, not the NCEs);
* Conv + BatchNorm + ReLU, so BatchNorm folds into the convolution at export;
* stride-2 convolutions for downsampling (hardware-friendly, and no MaxPool-8 in the IR);
* the sigmoid is inside the network so the IR outputs a probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

MAX_PARAMETERS = 100_000


@dataclass(frozen=True)
class NetConfig:
    """Channel widths of a U-Net: one entry per resolution level, full resolution first.

    ``widths[i]`` is the channel count at 1/2**i of the input resolution; the deepest entry is the
    bottleneck. ``in_channels`` is the number of input bands.
    """

    widths: tuple[int, ...]
    in_channels: int = 3

    def __post_init__(self) -> None:
        if len(self.widths) < 2:
            raise ValueError(f"widths needs at least 2 levels (got {list(self.widths)})")
        if any(int(w) != w or w < 1 for w in self.widths):
            raise ValueError(f"widths must be positive integers (got {list(self.widths)})")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be positive (got {self.in_channels})")

    @property
    def stride(self) -> int:
        """Input height and width must be multiples of this (each level halves the resolution)."""
        return 2 ** (len(self.widths) - 1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetConfig:
        """Build from a TOML table or a manifest ``genome``: ``{"widths": [...], "in_channels": 3}``."""
        return cls(widths=tuple(int(w) for w in data["widths"]), in_channels=int(data.get("in_channels", 3)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, recorded as the manifest's ``genome``."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution without bias (BatchNorm supplies it), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling without an Interpolate op.

    Each pixel is copied into a 2x2 block by broadcasting over two new unit axes and folding them into
    height and width; this exports as Unsqueeze/Broadcast/Reshape, all opset <= 3.
    """
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class UNet(nn.Module):
    """A U-Net: per level two 3x3 conv blocks down (the first strided), one up after concatenation.

    The decoder uses a single conv block per level: the encoder carries most of the capacity and the
    decoder mainly has to align the upsampled features with the skip connection, which keeps the
    parameter count well under the budget.
    """

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        w = config.widths
        self.down = nn.ModuleList()
        cin = config.in_channels
        for level, cout in enumerate(w):
            stride = 1 if level == 0 else 2
            self.down.append(nn.Sequential(conv_bn_relu(cin, cout, stride), conv_bn_relu(cout, cout)))
            cin = cout
        # up[i] merges level i+1 (upsampled) with the skip from level i, producing w[i] channels
        self.up = nn.ModuleList(conv_bn_relu(w[i + 1] + w[i], w[i]) for i in range(len(w) - 1))
        self.head = nn.Conv2d(w[0], 1, kernel_size=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid vessel score, (N, 1, H, W); training uses this for a numerically stable loss."""
        skips: list[torch.Tensor] = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for block in reversed(self.up):
            x = block(torch.cat([upsample2x(x), skips.pop()], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Vessel probability, (N, 1, H, W): the sigmoid is part of the exported IR."""
        return torch.sigmoid(self.logits(x))


def build_model(config: NetConfig) -> UNet:
    """Build the network for ``config``; refuses one above the parameter budget."""
    model = UNet(config)
    n = count_parameters(model)
    if n > MAX_PARAMETERS:
        raise ValueError(f"{config} has {n} parameters; the budget is {MAX_PARAMETERS}")
    return model


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm's affine included; it folds into the convolutions at export)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
