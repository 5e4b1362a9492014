"""Callbacks: cross-cutting behaviour (stopping, budgets, progress) outside the loop's body."""

from __future__ import annotations

import sys
import time
from typing import Any

from hone.train.state import TrainState


class Callback:
    """Base class; every hook is optional and receives the state.

    ``on_fit_start`` also receives the :class:`~hone.train.loop.Loop` (model, optimiser, scheduler,
    placement, best weights): keep it to save checkpoints or inspect the model.
    """

    def on_fit_start(self, state: TrainState, *, loop: Any = None) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_batch_end(self, state: TrainState, *, rows: int, loss: float | None) -> None: ...
    def on_evaluate(self, state: TrainState, *, metrics: dict[str, Any], is_best: bool) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...  # after the step's evaluation, if any: a consistent point
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...


class EarlyStopping(Callback):
    """Stop after ``patience`` evaluations without a new best validation metric."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_evaluate(self, state: TrainState, *, metrics: dict[str, Any], is_best: bool) -> None:
        if state.evals_since_best >= self.patience:
            state.should_stop = True
            state.stop_reason = f"early stopping: no better validation metric in {self.patience} evaluations"


class TimeBudget(Callback):
    """Stop once ``seconds`` of training and evaluation have passed; a resumed fit counts the time
    spent before the interruption."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = 0.0

    def on_fit_start(self, state: TrainState, *, loop: Any = None) -> None:
        self.start = time.perf_counter() - state.train_seconds - state.eval_seconds

    def on_batch_end(self, state: TrainState, *, rows: int, loss: float | None) -> None:
        if time.perf_counter() - self.start >= self.seconds and not state.should_stop:
            state.should_stop = True
            state.stop_reason = f"time budget of {self.seconds:g} s reached"


class ProgressBar(Callback):
    """A tqdm bar with loss, throughput and ETA; drawn only on a terminal."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = None

    def on_fit_start(self, state: TrainState, *, loop: Any = None) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.total_steps, unit="step", dynamic_ncols=True, leave=False)

    def on_batch_end(self, state: TrainState, *, rows: int, loss: float | None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(epoch=state.epoch + 1, loss=f"{loss:.4f}", rows_s=f"{state.rows_per_second:.0f}")

    def on_fit_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()
