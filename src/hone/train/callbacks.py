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
    spent before the interruption.

    When the planned steps cannot fit in the budget, the learning-rate schedule is fitted to it: after
    ``PROBE_STEPS`` steps, their measured pace says how many more steps fit in the budget (less
    ``EVAL_SHARE`` of it for evaluations), and the schedule's horizon is shortened to that, so the rate
    warms up and decays to zero by the budget's end instead of being cut while still high. Training
    then stops at the new horizon or at the budget, whichever comes first. ``fitted_steps`` records it.
    """

    PROBE_STEPS = 8
    EVAL_SHARE = 0.15

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = 0.0
        self.fit_schedule = True  # until the probe has been measured
        self.loop: Any = None
        self.first_step = 0
        self.fitted_steps: int | None = None

    def on_fit_start(self, state: TrainState, *, loop: Any = None) -> None:
        self.start = time.perf_counter() - state.train_seconds - state.eval_seconds
        self.loop, self.first_step = loop, state.step

    def on_batch_end(self, state: TrainState, *, rows: int, loss: float | None) -> None:
        now = time.perf_counter()
        if now - self.start >= self.seconds and not state.should_stop:
            state.should_stop = True
            state.stop_reason = f"time budget of {self.seconds:g} s reached"
        if self.fit_schedule and state.step - self.first_step >= self.PROBE_STEPS:
            self.fit_schedule = False  # measured once
            self._fit(state, now)
        if self.fitted_steps is not None and state.step >= self.fitted_steps and not state.should_stop:
            state.should_stop = True
            state.stop_reason = (f"time budget of {self.seconds:g} s reached (the schedule was fitted to it: "
                                 f"{self.fitted_steps} steps)")

    def _fit(self, state: TrainState, now: float) -> None:
        from hone.train.optim import schedule_step

        sched = getattr(self.loop, "scheduler", None)
        horizon = getattr(sched, "horizon", None)
        if horizon is None:  # not a linear_schedule: nothing to fit
            return
        pace = (now - self.start - state.eval_seconds) / max(state.step - self.first_step, 1)
        more = int((self.seconds * (1 - self.EVAL_SHARE) - (now - self.start)) / max(pace, 1e-9))
        at = schedule_step(sched)
        if at + more >= horizon[0]:  # the plan fits: nothing to change
            return
        horizon[0] = at + max(more, 1)
        self.fitted_steps = state.step + max(more, 1)
        state.total_steps = self.fitted_steps


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
