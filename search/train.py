"""The training loop: BCE + soft Dice, Adam with cosine decay, scored per epoch on whole scenes.

Vessels are rare pixels, so plain BCE rewards predicting sea everywhere; the soft Dice term is
computed over the vessel class only and pulls recall up. The search reuses :func:`train_model` for
every candidate, so it takes the network config and the data, and returns the trained network.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from search.data import Normalization, PatchSampler, SceneArrays
from search.evaluate import score_scenes, torch_predictor
from search.model import NetConfig, UNet, build_model


@dataclass(frozen=True)
class TrainSettings:
    """The knobs of one training run (table ``[train]`` of ``search/defaults.toml``)."""

    epochs: int
    steps_per_epoch: int
    batch: int
    patch: int
    vessel_fraction: float
    lr: float
    weight_decay: float
    dice_weight: float
    threads: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        return cls(**{f: data[f] for f in cls.__dataclass_fields__})


@dataclass
class TrainResult:
    """A trained network and how it got there."""

    model: UNet
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int, threads: int) -> np.random.Generator:
    """Fix torch's and numpy's randomness and the thread count; returns the numpy generator to use.

    Results are reproducible for a given seed on one machine; a different thread count or CPU may
    change the order of floating-point sums and hence the last bits.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return np.random.default_rng(seed)


def adam_cosine(params: Any, lr: float, weight_decay: float, total_steps: int) -> tuple[torch.optim.Adam, Any]:
    """Adam and a cosine decay of its learning rate to zero over ``total_steps`` optimiser steps.

    Decayed per step, not per epoch, so that short runs decay smoothly too.
    """
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    total = max(total_steps, 1)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """Binary cross-entropy plus ``dice_weight`` times the soft Dice loss of the vessel class.

    Dice is summed over the whole batch, not per patch, so a patch without vessels does not make
    the term degenerate.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice_weight * dice


def train_model(
    config: NetConfig,
    train_scenes: list[SceneArrays],
    val_scenes: list[SceneArrays],
    norm: Normalization,
    settings: TrainSettings,
    seed: int,
    tile: int,
    threshold: float,
    progress: bool = True,
) -> TrainResult:
    """Train a fresh network for ``config``; print loss and validation vessel IoU per epoch."""
    rng = seed_everything(seed, settings.threads)
    model = build_model(config)
    sampler = PatchSampler(train_scenes, norm, settings.patch, settings.vessel_fraction, rng)
    opt, sched = adam_cosine(model.parameters(), settings.lr, settings.weight_decay,
                             settings.epochs * settings.steps_per_epoch)
    result = TrainResult(model)
    start = time.perf_counter()
    epochs = tqdm(range(settings.epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in epochs:
        model.train()
        losses = []
        for _ in range(settings.steps_per_epoch):
            images, masks = sampler.batch(settings.batch)
            logits = model.logits(torch.from_numpy(images))
            loss = bce_dice_loss(logits, torch.from_numpy(masks), settings.dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        conf = score_scenes(torch_predictor(model), val_scenes, norm, tile, threshold)
        row = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "val_vessel_iou": conf.vessel_iou,
            "val_miou": conf.miou,
        }
        result.history.append(row)
        epochs.set_postfix(loss=f"{row['loss']:.4f}", val_iou=f"{conf.vessel_iou:.3f}")
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}/{settings.epochs}: loss {row['loss']:.4f}  "
                f"val vessel IoU {conf.vessel_iou:.3f}  mIoU {conf.miou:.3f}"
            )
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
