"""One training assembly: the optimiser, schedule, loss and loop settings for a network, its strategy and
the train settings. A run's fit and a federation's round both build their training here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from hone.config.resolution import ResolvedTrainConfig
from hone.train.loop import LoopConfig
from hone.train.optim import class_weights, linear_schedule, make_loss, make_optimizer


class _Strategy(Protocol):
    def param_groups(self, net: Any, *, lr: float, head_lr: float, weight_decay: float) -> list[dict[str, Any]]: ...


@dataclass
class Setup:
    """What a training loop needs besides its batches: built by :func:`assemble`."""

    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loop: LoopConfig
    class_weights: np.ndarray | None  # the loss's class weights, if any (recorded by the run)


def steps_per_epoch(rows: int, batch_size: int, grad_accum_steps: int) -> int:
    """Optimiser steps in one pass over ``rows`` (a step sums ``grad_accum_steps`` batches)."""
    batches = -(-rows // batch_size)
    return max(1, -(-batches // grad_accum_steps))


def assemble(tr: ResolvedTrainConfig, net: nn.Module, strategy: _Strategy, *, task: str, class_counts: list[int],
             rows: int, higher_is_better: bool, device: torch.device | str = "cpu", epochs: int | None = None,
             total_steps: int | None = None, start_step: int = 0, restore_best: bool = True,
             eval_every_steps: int | None = None) -> Setup:
    """The optimiser over the strategy's parameter groups, the linear warm-up schedule over
    ``total_steps`` (default: ``epochs`` passes over ``rows``) from ``start_step``, the loss (class-weighted
    as ``tr.class_weights`` says) and the loop's settings."""
    epochs = tr.epochs if epochs is None else epochs
    per_epoch = steps_per_epoch(rows, tr.batch_size, tr.grad_accum_steps)
    weights = None
    if task != "regression":
        weights, _ = class_weights(class_counts, tr.class_weights)
    has_backbone = bool(getattr(net, "backbones", lambda: [])())
    groups = strategy.param_groups(net, lr=tr.lr, head_lr=tr.head_lr if has_backbone else tr.lr,
                                   weight_decay=tr.weight_decay)
    opt = make_optimizer(groups)
    sched = linear_schedule(opt, total_steps if total_steps is not None else epochs * per_epoch, tr.warmup_ratio,
                            start=start_step)
    loss_fn = make_loss(task, weights.to(device) if weights is not None else None)
    loop = LoopConfig(epochs=epochs, steps_per_epoch=per_epoch, metric=tr.metric, higher_is_better=higher_is_better,
                      grad_clip=tr.grad_clip, grad_accum_steps=tr.grad_accum_steps,
                      eval_every_steps=eval_every_steps, restore_best=restore_best)
    return Setup(opt, sched, loss_fn, loop, weights.numpy() if weights is not None else None)
