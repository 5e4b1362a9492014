"""fit_loop: the one training loop, a plain function composed of small steps.

Everything optional (early stopping, time budgets, progress, and later tracking or pruning) is a
:class:`~hone.train.callbacks.Callback`; evaluation is a function passed in; the hardware and the
engine come in as a :class:`~hone.train.placement.Placement`. This module knows nothing of metrics,
data formats or engines. A fit can be resumed from a saved state (``hone.train.checkpoint``): the
loop skips the batches of the current epoch that were already trained on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hone.train.callbacks import Callback
from hone.train.placement import Placement
from hone.train.state import TrainState

Batch = tuple[dict[str, Any], torch.Tensor, int]  # (model inputs, targets, number of rows)


@dataclass
class LoopConfig:
    """The loop's resolved settings."""

    epochs: int
    steps_per_epoch: int
    metric: str
    higher_is_better: bool
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1  # batches whose gradients are summed before one optimiser step
    eval_every_steps: int | None = None
    loss_log_every: int = 10  # loss.item() is a host sync on a GPU: read it only this often
    restore_best: bool = True  # False: keep the last weights (training on the validation rows too)


@dataclass
class Loop:
    """What one step touches; handed to callbacks (``on_fit_start``) so they can save or inspect it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    placement: Placement
    cfg: LoopConfig
    best: dict[str, torch.Tensor]
    forward: nn.Module | None = None  # what the training forward goes through (DDP over ``model``), if not the model


def forward_backward(loop: Loop, batch: Batch) -> torch.Tensor:
    """Forward and backward on one batch (the loss divided by the accumulation count); returns the
    detached loss tensor without synchronising."""
    inputs, y, _ = batch
    with loop.placement.autocast():
        out = (loop.forward or loop.model)(inputs)
    loss = loop.loss_fn(out.float(), y)
    accum = loop.cfg.grad_accum_steps
    (loss / accum if accum > 1 else loss).backward()
    return loss.detach()


def optimizer_step(loop: Loop, micro_batches: int) -> None:
    """Clip, step, schedule and clear gradients. ``micro_batches`` below the accumulation count (the
    epoch's last, partial group) rescales the summed gradients to a mean over the batches seen."""
    accum = loop.cfg.grad_accum_steps
    if 0 < micro_batches < accum:
        for p in loop.model.parameters():
            if p.grad is not None:
                p.grad.mul_(accum / micro_batches)
    if loop.cfg.grad_clip:
        nn.utils.clip_grad_norm_(loop.model.parameters(), loop.cfg.grad_clip)
    loop.optimizer.step()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)


def improves(value: float, best: float | None, higher_is_better: bool) -> bool:
    """Whether ``value`` beats ``best``; NaN never does, and anything real beats a missing or NaN best.

    Example:
        >>> improves(float("nan"), None, True), improves(0.5, float("nan"), True), improves(0.4, 0.5, True)
        (False, True, False)
    """
    if math.isnan(value):
        return False
    if best is None or math.isnan(best):
        return True
    return value > best if higher_is_better else value < best


def evaluate_step(loop: Loop, evaluate: Callable[[], dict[str, float]], state: TrainState,
                  callbacks: list[Callback]) -> None:
    """Run validation, record it, keep the best weights in ``loop.best`` and let callbacks react."""
    t0 = time.perf_counter()
    metrics = evaluate()
    state.eval_seconds += time.perf_counter() - t0
    value = float(metrics[loop.cfg.metric])
    better = improves(value, state.best_metric, loop.cfg.higher_is_better)
    if better:
        state.best_metric, state.best_step, state.best_epoch, state.evals_since_best = (
            value,
            state.step,
            state.epoch + 1,
            0,
        )
        # copy into the same buffers each time: fresh 90 MB clones per improvement fragment the heap
        for k, v in loop.model.state_dict().items():
            if k in loop.best and loop.best[k].shape == v.shape:
                loop.best[k].copy_(v.detach())
            else:
                loop.best[k] = v.detach().clone()
    else:
        state.evals_since_best += 1
    state.last_eval_step = state.step
    state.history.append({"epoch": state.epoch + 1, "step": state.step, "train_loss": state.last_loss, **metrics})
    for cb in callbacks:
        cb.on_evaluate(state, metrics=metrics, is_best=better)


def fit_loop(
    model: nn.Module,
    *,
    batches: Callable[[int], Iterable[Batch]],
    evaluate: Callable[[], dict[str, float]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    cfg: LoopConfig,
    placement: Placement | None = None,
    callbacks: list[Callback] | None = None,
    state: TrainState | None = None,
    best: dict[str, torch.Tensor] | None = None,
) -> TrainState:
    """Train ``model`` for up to ``cfg.epochs`` epochs and restore the best validation checkpoint.

    Args:
        model: the network, already on ``placement.device``.
        batches: ``batches(epoch)`` yields the epoch's training batches, the same ones for the same
            epoch (shuffled by the caller with a seed).
        evaluate: returns validation metrics including ``cfg.metric``.
        loss_fn, optimizer, scheduler: the objective and its optimiser (the scheduler steps per
            optimiser step).
        cfg: epochs, clipping, accumulation, evaluation cadence and the metric to select on.
        placement: device, precision and ranks (default: this process, fp32).
        callbacks: early stopping, budgets, progress, tracking...
        state, best: a saved state and best weights to resume from (``hone.train.checkpoint``).

    Returns:
        The final :class:`TrainState`; ``train_seconds`` counts training steps and batch preparation,
        not evaluation.
    """
    callbacks = callbacks or []
    placement = placement or Placement(device=next(model.parameters()).device)
    state = state or TrainState(total_steps=cfg.epochs * cfg.steps_per_epoch)
    loop = Loop(model, optimizer, scheduler, loss_fn, placement, cfg, best if best is not None else {})
    loop.forward = placement.wrap(model)  # DDP when the placement has several processes
    model.train()
    for cb in callbacks:
        cb.on_fit_start(state, loop=loop)
    first = cfg.epochs if state.should_stop else state.epoch + 1 if state.epoch_finished else state.epoch
    for epoch in range(first, cfg.epochs):  # a state saved after the stop resumes straight to the end
        if epoch != state.epoch or state.epoch_finished:
            state.epoch, state.batch_in_epoch, state.epoch_finished = epoch, 0, False
        for cb in callbacks:
            cb.on_epoch_start(state)
        _run_epoch(loop, batches(epoch), evaluate, state, callbacks)
        state.epoch_finished = True  # before the hooks, so that a state saved there resumes with the next epoch
        for cb in callbacks:
            cb.on_epoch_end(state)
        if state.should_stop:
            break
    if loop.best and cfg.restore_best:
        model.load_state_dict(loop.best)
    model.eval()
    for cb in callbacks:
        cb.on_fit_end(state)
    return state


def _run_epoch(loop: Loop, epoch_batches: Iterable[Batch], evaluate: Callable[[], dict[str, float]],
               state: TrainState, callbacks: list[Callback]) -> None:
    cfg = loop.cfg
    skip, pending, loss = state.batch_in_epoch, 0, None
    tick = time.perf_counter()

    def after_step(rows: int) -> None:
        nonlocal tick
        state.step += 1
        logged = state.step % cfg.loss_log_every == 0
        if logged and loss is not None:
            state.last_loss = float(loss)
        state.train_seconds += time.perf_counter() - tick
        for cb in callbacks:
            cb.on_batch_end(state, rows=rows, loss=state.last_loss if logged else None)
        state.should_stop = loop.placement.any(state.should_stop)  # every process stops at the same step
        if (cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0) or state.should_stop:
            evaluate_step(loop, evaluate, state, callbacks)
        for cb in callbacks:
            cb.on_step_end(state)
        tick = time.perf_counter()

    for i, batch in enumerate(epoch_batches):
        if i < skip:  # resuming: these batches were trained on before the state was saved
            continue
        loss = forward_backward(loop, batch)
        state.rows_seen += batch[2]
        state.batch_in_epoch = i + 1
        pending += 1
        if pending == cfg.grad_accum_steps:
            optimizer_step(loop, pending)
            pending = 0
            after_step(batch[2])
            if state.should_stop:
                return
    if pending:  # the epoch's last, partial accumulation group is applied, never carried or lost
        optimizer_step(loop, pending)
        after_step(0)
        if state.should_stop:
            return
    if loss is not None and state.step:
        state.last_loss = float(loss)
    last_epoch = state.epoch == cfg.epochs - 1
    if state.last_eval_step != state.step and (not cfg.eval_every_steps or last_epoch):
        evaluate_step(loop, evaluate, state, callbacks)
