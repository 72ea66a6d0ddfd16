"""The pieces of the training loop (:func:`search.candidate.fit`, the one loop the baseline and the
candidates share): the seeding, the optimiser and its schedule, and the loss.

Vessels are rare pixels, so plain BCE rewards predicting sea everywhere; the soft Dice term is
computed over the vessel class only and pulls recall up.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


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


def land_loss(logits: torch.Tensor, land: torch.Tensor, unknown: float,
              focus: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of the land head over the pixels whose land value is known (``land``
    equal to ``unknown`` is left out); zero for a batch with none known.

    ``focus`` (the shape of ``logits``, >= 0, no gradient): each known pixel's cross-entropy is
    weighted by ``1 + focus`` and the sum divided by the sum of those weights, so the loss keeps its
    scale while the pixels with more focus count more (``[train] land_focus``: where the vessel head
    fires, the only pixels whose gate value changes the flown output)."""
    known = land != unknown
    if not bool(known.any()):
        return logits.sum() * 0.0
    if focus is None:
        return F.binary_cross_entropy_with_logits(logits[known], land[known])
    weight = 1.0 + focus.detach()[known]
    bce = F.binary_cross_entropy_with_logits(logits[known], land[known], reduction="none")
    return (weight * bce).sum() / weight.sum()
