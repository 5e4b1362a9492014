"""Losses, AdamW parameter groups and the linear warm-up/decay schedule."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


def class_weights(counts: list[int], mode: str) -> tuple[torch.Tensor | None, bool]:
    """Balanced weights ``n / (K * n_k)`` when ``mode`` is balanced, or auto with a max/min ratio >= 1.5.

    Example:
        >>> w, used = class_weights([900, 100], "auto"); used, [round(x, 2) for x in w.tolist()]
        (True, [0.56, 5.0])
    """
    c = np.asarray(counts, dtype=np.float64)
    use = mode == "balanced" or (mode == "auto" and c.max() / max(c.min(), 1.0) >= 1.5)
    if not use:
        return None, False
    return torch.tensor(c.sum() / (len(c) * np.maximum(c, 1.0)), dtype=torch.float32), True


def make_loss(task: str, weights: torch.Tensor | None) -> nn.Module:
    """Cross-entropy (optionally class-weighted) for classification, MSE for regression."""
    if task == "regression":
        return _MSE()
    return nn.CrossEntropyLoss(weight=weights)


class _MSE(nn.Module):
    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(out[:, 0], y)


def make_optimizer(groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """AdamW over parameter groups (each with its ``lr`` and ``weight_decay``; see
    :func:`hone.models.strategies.param_groups`)."""
    # The fused kernel updates all tensors in one pass instead of a loop of small ops per tensor,
    # which matters on a CPU where MiniLM's 11.7M-row embedding matrix is updated every step.
    return torch.optim.AdamW(groups, fused=True)


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, *,
                    start: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to zero; ``start``: the
    schedule's step this optimiser begins at (a federated round continues the rounds before it).

    The schedule's ``horizon`` (a one-item list: the total steps) may be shortened while it runs: a
    time budget that cannot fit the planned steps makes the rate decay to zero by the budget's end
    (:class:`hone.train.callbacks.TimeBudget`); ``schedule_step(sched)`` is its step in the same count."""
    horizon = [total_steps]

    def factor(step: int) -> float:
        step += start
        total = horizon[0]
        warmup = int(total * warmup_ratio)
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    sched.horizon = horizon
    sched.start = start
    return sched


def schedule_step(sched: Any) -> int:
    """The step a :func:`linear_schedule` is at, in its ``horizon``'s count."""
    return int(sched.last_epoch) + int(getattr(sched, "start", 0))
