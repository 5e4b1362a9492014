"""fit_loop: the one training loop, a plain function composed of small steps.

Everything optional (early stopping, time budgets, progress, and later tracking or pruning) is a
:class:`~hone.train.callbacks.Callback`; evaluation is a function passed in, so this module knows
nothing of metrics, data formats or engines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hone.models.precision import autocast
from hone.train.callbacks import Callback
from hone.train.state import TrainState

Batch = tuple[dict[str, Any], torch.Tensor, int]  # (model inputs, targets, number of rows)


@dataclass
class LoopConfig:
    """The loop's resolved settings."""

    epochs: int
    steps_per_epoch: int
    metric: str
    higher_is_better: bool
    precision: str = "fp32"
    device: torch.device = torch.device("cpu")
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1  # batches whose gradients are summed before one optimiser step
    eval_every_steps: int | None = None
    loss_log_every: int = 10  # loss.item() is a host sync on a GPU: read it only this often


def train_step(model: nn.Module, batch: Batch, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any, cfg: LoopConfig, *, update: bool = True) -> torch.Tensor:
    """Forward and backward on one batch, then (when ``update``) one optimiser step; returns the
    detached loss tensor without synchronising."""
    inputs, y, _ = batch
    with autocast(cfg.precision, cfg.device):
        out = model(inputs)
    loss = loss_fn(out.float(), y)
    (loss / cfg.grad_accum_steps if cfg.grad_accum_steps > 1 else loss).backward()
    if not update:
        return loss.detach()
    if cfg.grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def evaluate_step(model: nn.Module, evaluate: Callable[[], dict[str, float]], state: TrainState, cfg: LoopConfig,
                  best: dict[str, torch.Tensor], callbacks: list[Callback]) -> None:
    """Run validation, record it, keep the best weights in ``best`` and let callbacks react."""
    t0 = time.perf_counter()
    metrics = evaluate()
    state.eval_seconds += time.perf_counter() - t0
    value = float(metrics[cfg.metric])
    better = state.best_metric is None or (value > state.best_metric if cfg.higher_is_better else value < state.best_metric)
    if math.isnan(value):
        better = state.best_metric is None
    if better:
        state.best_metric, state.best_step, state.best_epoch, state.evals_since_best = value, state.step, state.epoch + 1, 0
        # copy into the same buffers each time: fresh 90 MB clones per improvement fragment the heap
        for k, v in model.state_dict().items():
            if k in best and best[k].shape == v.shape:
                best[k].copy_(v.detach())
            else:
                best[k] = v.detach().clone()
    else:
        state.evals_since_best += 1
    state.history.append({"epoch": state.epoch + 1, "step": state.step, "train_loss": state.last_loss, **metrics})
    for cb in callbacks:
        cb.on_evaluate(state, metrics=metrics, is_best=better)


def fit_loop(model: nn.Module, *, batches: Callable[[int], Iterable[Batch]], evaluate: Callable[[], dict[str, float]],
             loss_fn: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, cfg: LoopConfig,
             callbacks: list[Callback] | None = None) -> TrainState:
    """Train ``model`` for up to ``cfg.epochs`` epochs and restore the best validation checkpoint.

    Args:
        model: the network, already on ``cfg.device``.
        batches: ``batches(epoch)`` yields the epoch's training batches (shuffled by the caller).
        evaluate: returns validation metrics including ``cfg.metric``.
        loss_fn, optimizer, scheduler: the objective and its optimiser (the scheduler steps per batch).
        cfg: epochs, precision, clipping, evaluation cadence and the metric to select on.
        callbacks: early stopping, budgets, progress, tracking...

    Returns:
        The final :class:`TrainState`; ``train_seconds`` counts training steps and batch preparation,
        not evaluation.
    """
    callbacks = callbacks or []
    state = TrainState(total_steps=cfg.epochs * cfg.steps_per_epoch)
    best: dict[str, torch.Tensor] = {}
    model.train()
    for cb in callbacks:
        cb.on_fit_start(state)
    for epoch in range(cfg.epochs):
        state.epoch = epoch
        for cb in callbacks:
            cb.on_epoch_start(state)
        evaluated_at = -1
        tick = time.perf_counter()
        micro = 0
        for batch in batches(epoch):
            micro += 1
            update = micro % cfg.grad_accum_steps == 0
            loss = train_step(model, batch, loss_fn, optimizer, scheduler, cfg, update=update)
            state.rows_seen += batch[2]
            if not update:
                continue
            state.step += 1
            logged = state.step % cfg.loss_log_every == 0
            if logged:
                state.last_loss = float(loss)
            state.train_seconds += time.perf_counter() - tick
            for cb in callbacks:
                cb.on_batch_end(state, rows=batch[2], loss=state.last_loss if logged else None)
            if (cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0) or state.should_stop:
                evaluate_step(model, evaluate, state, cfg, best, callbacks)
                evaluated_at = state.step
            if state.should_stop:
                break
            tick = time.perf_counter()
        state.last_loss = float(loss) if state.step else state.last_loss
        if evaluated_at != state.step and (not cfg.eval_every_steps or epoch == cfg.epochs - 1 or state.should_stop):
            evaluate_step(model, evaluate, state, cfg, best, callbacks)
        for cb in callbacks:
            cb.on_epoch_end(state)
        if state.should_stop:
            break
    if best:
        model.load_state_dict(best)
    model.eval()
    for cb in callbacks:
        cb.on_fit_end(state)
    return state
