"""TrainState: the small record of a fit that the loop updates and callbacks read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """Progress of one fit. Callbacks stop training by setting ``should_stop`` (and ``stop_reason``)."""

    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch already trained on: the data position
    epoch_finished: bool = False  # the current epoch's training and evaluation are done
    step: int = 0
    total_steps: int = 0
    rows_seen: int = 0
    last_loss: float = float("nan")
    train_seconds: float = 0.0  # time in training steps only, evaluation excluded
    eval_seconds: float = 0.0
    best_metric: float | None = None
    best_step: int = 0
    best_epoch: int = 0
    evals_since_best: int = 0
    last_eval_step: int = -1  # the step of the latest evaluation (a resumed epoch does not evaluate twice)
    should_stop: bool = False
    stop_reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_seen / self.train_seconds if self.train_seconds > 0 else 0.0
