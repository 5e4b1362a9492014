"""A run against the clock: the stage times every run records, and the planner that keeps a whole
command within ``--time-limit``.

Without a time limit a fit runs its stages in their usual order (the baseline is fitted after the
network, in the choice stage). With one, :class:`TimeLimit` fits the baseline first, measures what it
cost, gives the network what is left minus a reserve for the stages after training (scoring
validation and test, choice, bootstrap, report), and decides, from the time left when it comes to
it, how much of the explanation to run. What it cut is recorded (``metrics.json`` ``budget``).
``hone auto``'s planner (:mod:`hone.automl`) is a :class:`TimeLimit` whose shallow stage is a
portfolio of boosted trees and an ensemble instead of the one baseline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hone._logging import get_logger
from hone.config import ResolvedRunConfig
from hone.features.pipeline import Preprocessor
from hone.models.baseline import Baseline

logger = get_logger("hone.fit")

# The share of the time left at the network's start kept for the stages after training (scoring
# validation and test, the choice, bootstrap, figures, saving and the report), plus a fixed part.
RESERVE_SHARE = 0.15
RESERVE_SECONDS = 3.0
# The explanation runs only when this share of the limit is left once the model is chosen; its
# example rows (Integrated Gradients, the costly part) only when EXAMPLES_SHARE is left.
EXPLAIN_SHARE = 0.15
EXAMPLES_SHARE = 0.3
MARGIN = 0.97  # plan to finish at 97 % of the limit


class Clock:
    """Seconds per stage, and the time left of an optional limit."""

    def __init__(self, limit: float | None = None, started: float | None = None) -> None:
        self.limit = limit
        self.started = time.monotonic() if started is None else started
        self.stages: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        """Seconds left before the planned end (``MARGIN`` of the limit); infinite without a limit."""
        return float("inf") if self.limit is None else self.limit * MARGIN - self.elapsed()

    @property
    def deadline(self) -> float | None:
        """The planned end as ``time.monotonic()``; None without a limit."""
        return None if self.limit is None else self.started + self.limit * MARGIN

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.stages[name] = round(self.stages.get(name, 0.0) + time.monotonic() - t0, 3)


class Planner:
    """No limit: every stage as configured, the baseline fitted in the choice stage."""

    prefits = False  # True: the shallow stage runs before the network (:meth:`shallow`)

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.cuts: list[str] = []

    def shallow(self, pre: Preprocessor, paths: dict[str, Path], cfg: ResolvedRunConfig) -> Baseline | None:
        """The baseline (or ensemble) fitted before the network, when :attr:`prefits`."""
        return None

    def network(self, cfg: ResolvedRunConfig) -> ResolvedRunConfig:
        """The network's settings for the time left (its training time budget)."""
        return cfg

    def after_network(self, prefit: Baseline | None) -> Baseline | None:
        """The prefitted baseline again once the network has trained: a planner may use the time the
        network left (it stopped early) to fit more shallow models and return a better one."""
        return prefit

    def baseline_validation(self) -> np.ndarray | None:
        """The prefitted baseline's validation outputs, when they must not be recomputed (a k-fold bag's
        are out of fold); None: score the validation rows with it."""
        return None

    def requested_model(self, requested: str, network_rows_per_second: float) -> str:
        """``evaluate.model`` for the choice, once the network's scoring speed is measured."""
        return requested

    def explanation(self, rows: int, examples: int) -> tuple[int, int] | None:
        """``(rows, examples)`` of the explanation for the time left; None: no explanation."""
        return rows, examples

    def record(self) -> dict[str, Any]:
        """``metrics.json``'s ``budget``: the stage times, the limit and what was cut."""
        out: dict[str, Any] = {"stages": dict(self.clock.stages)}
        if self.clock.limit is not None:
            out["budget"] = {"limit_seconds": self.clock.limit,
                             "planned_end_seconds": round(self.clock.limit * MARGIN, 2),
                             "seconds_when_the_run_files_were_made": round(self.clock.elapsed(), 2),
                             "cuts": list(self.cuts)}
        return out


class TimeLimit(Planner):
    """``--time-limit``: the default baseline first, then the network in what is left."""

    prefits = True

    def __init__(self, limit: float, started: float | None = None) -> None:
        super().__init__(Clock(limit, started))

    def shallow(self, pre: Preprocessor, paths: dict[str, Path], cfg: ResolvedRunConfig) -> Baseline | None:
        if not cfg.evaluate.baseline:
            return None
        from hone.models.baseline import fit_baseline

        try:
            return fit_baseline(pre, paths["train"], paths["validation"], seed=cfg.train.seed,
                                threads=cfg.train.num_threads)
        except Exception as err:  # noqa: BLE001 -- as in the choice stage: the baseline is a reference
            logger.warning("no baseline for this table (%s: %s)", type(err).__name__, str(err).splitlines()[0])
            return None

    def network(self, cfg: ResolvedRunConfig) -> ResolvedRunConfig:
        left = self.clock.left()
        budget = max(1.0, left * (1 - RESERVE_SHARE) - RESERVE_SECONDS)
        if cfg.train.time_budget is None or cfg.train.time_budget > budget:
            self.cuts.append(f"network training limited to {budget:.0f} s ({left:.0f} s were left)")
            logger.info("time limit: the network trains for at most %.0f s (%.0f s left of %.0f s)", budget, left,
                        self.clock.limit)
            cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"time_budget": budget})})
        return cfg

    def explanation(self, rows: int, examples: int) -> tuple[int, int] | None:
        assert self.clock.limit is not None
        left = self.clock.left()
        if left < EXPLAIN_SHARE * self.clock.limit:
            self.cuts.append(f"explanation skipped ({left:.0f} s were left)")
            return None
        if examples and left < EXAMPLES_SHARE * self.clock.limit:
            self.cuts.append(f"explanation without example rows ({left:.0f} s were left)")
            return rows, 0
        return rows, examples
