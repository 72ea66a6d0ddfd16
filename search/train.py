"""The training loop (:func:`fit`, the one loop the baseline and the candidates share) and its
pieces: the seeding, the optimiser and its schedule, and the loss; :func:`train_genome`, a
candidate's FP32 training then aligned fine-tuning.

It imports torch and the search's data and network modules, not OpenVINO, rasterio or the rig, so
that a candidate can be trained on a machine with only torch and numpy
(``scripts/train_elsewhere.py``) and exported and scored where the toolkit is.

Vessels are rare pixels, so plain BCE rewards predicting sea everywhere; the soft Dice term is
computed over the vessel class only and pulls recall up.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from search.align import Aligner
from search.data import LAND_UNKNOWN, PatchSampler
from search.dataset import SearchData, make_sampler
from search.network import GenomeNet
from search.space import Genome


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


def torch_device(name: str) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU.

    Raises:
        ValueError: for a CUDA device this host does not have, listing what it has: every training
            (a candidate's, the baseline's, an ablation's) failed deep inside torch on it instead.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        have = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        raise ValueError(f"torch device {name!r}: this host has no such CUDA device; valid here: "
                         f"{['auto', 'cpu', *have]}")
    return device


def fit(net: GenomeNet, sampler: PatchSampler, cfg: dict[str, Any], epochs: int, lr: float,
        device: torch.device, aligner: Aligner | list[Aligner] | None = None,
        range_penalty: float = 0.0) -> dict[str, Any]:
    """Train ``net`` for ``epochs`` x ``train.steps_per_epoch`` steps; FP32, or aligned to ``aligner``.

    A list of aligners is robust alignment: each step's forward pass is drawn from the list
    (seeded), so the network learns to hold under every device hypothesis of the set.

    With ``[train] land_weight`` > 0 and sea/land masks in the data (``[data] land_masks``), a
    second 1x1 head on the decoder's last features learns land from every labelled pixel, and its
    loss is added with that weight: the features the vessel head reads must then tell land from
    sea, where most SAR false alarms lie. Without ``[train] land_gate`` that head exists for training
    only (``net.land_head``): the exported network has the vessel output alone. With it, the head is
    the network's own sea head (:class:`search.network.GenomeNet`), which gates the output on board;
    the vessel loss is on the ungated vessel logits, so each head learns its own question, or, with
    ``[train] gate_loss = "flown"``, on the gated output the payload thresholds."""
    tr = cfg["train"]
    land_weight = float(tr.get("land_weight", 0.0))
    use_land = land_weight > 0 and sampler.has_land
    if net.sea_head is not None and not use_land:
        raise ValueError("[train] land_gate needs sea/land masks to learn from: set [train] land_weight > 0 "
                         "and [data] land_masks to a folder of masks for the training samples")
    if use_land and net.sea_head is None and getattr(net, "land_head", None) is None:
        net.land_head = torch.nn.Conv2d(net.head.conv.in_channels, 1, 1)
    flown_loss = net.sea_head is not None and tr.get("gate_loss", "vessel") == "flown"
    land_focus = float(tr.get("land_focus", 0.0))
    net.to(device).train()
    aligners = aligner if isinstance(aligner, list) else [aligner]
    # each step's profile of robust alignment, drawn from the run's seed (seed_everything seeds torch);
    # torch's generator is read only then, so that a training with one profile is unchanged
    draws = np.random.default_rng(int(torch.randint(2**62, ())) if len(aligners) > 1 else 0)
    net.aligner = aligners[0]
    opt, sched = adam_cosine(net.parameters(), lr, tr["weight_decay"], epochs * tr["steps_per_epoch"])
    losses: list[float] = []
    start = time.perf_counter()
    for _ in range(epochs * tr["steps_per_epoch"]):
        if len(aligners) > 1:
            net.aligner = aligner = aligners[int(draws.integers(len(aligners)))]
        if use_land:
            images, masks, land = sampler.batch_with_land(tr["batch"])
            x = torch.from_numpy(images).to(device)
            features = net.features(x)
            logits = net.head(features)
            # land from the gate's sea head (computed once, for both losses), or the training-only head
            sea = net.sea_logits(features, x) if net.sea_head is not None else None
            # the land loss weighted towards the pixels the vessel head calls vessels ([train] land_focus)
            focus = land_focus * torch.sigmoid(logits.detach()) if land_focus else None
            if flown_loss:
                logits = net.flown_logits(logits, sea)
            land_logits = -sea if sea is not None else net.land_head(features)
            loss = bce_dice_loss(logits, torch.from_numpy(masks).to(device), tr["dice_weight"]) + land_weight * \
                land_loss(land_logits, torch.from_numpy(land).to(device), LAND_UNKNOWN, focus)
        else:
            images, masks = sampler.batch(tr["batch"])
            logits = net.logits(torch.from_numpy(images).to(device))
            loss = bce_dice_loss(logits, torch.from_numpy(masks).to(device), tr["dice_weight"])
        if aligner is not None and range_penalty:
            loss = loss + range_penalty * aligner.range_penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
    net.aligner = None
    net.eval()
    return {"epochs": epochs, "seconds": time.perf_counter() - start,
            "final_loss": float(np.mean(losses[-tr["steps_per_epoch"]:] or [math.nan])),
            **({"land_weight": land_weight} if use_land else {})}


def train_genome(genome: Genome, cfg: dict[str, Any], data: SearchData, seed: int,
                 fp32_epochs: int, aligned_epochs: int) -> tuple[GenomeNet, GenomeNet, dict[str, Any]]:
    """FP32 training then aligned fine-tuning; returns (FP32 net, aligned net, training log)."""
    tr, cand = cfg["train"], cfg["candidate"]
    rng = seed_everything(seed, tr["threads"])
    device = torch_device(cand["torch_device"])
    sampler = make_sampler(cfg, data, rng)
    net = GenomeNet(genome, land_gate=tr["land_gate"])
    log = {"seed": seed, "torch_device": str(device), "fp32": fit(net, sampler, cfg, fp32_epochs, tr["lr"], device)}
    fp32_net = copy.deepcopy(net).cpu()
    robust = list(cand["robust_profiles"])
    aligner: Aligner | list[Aligner] = ([Aligner.for_profile(p) for p in robust] if robust
                                        else Aligner.for_profile(cand["profile"]))
    log["aligned"] = fit(net, sampler, cfg, aligned_epochs, tr["lr"] * cand["aligned_lr_scale"], device,
                         aligner, cand["range_penalty"])
    return fp32_net, net.cpu(), log
