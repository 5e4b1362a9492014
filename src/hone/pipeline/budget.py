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
# The fine-tuning strategy a time limit affords, when the user left it to hone (``model.strategy`` and
# the preset on auto) and the network has a pretrained backbone: the most thorough one whose training,
# at the pace measured on this table's rows (:func:`hone.pipeline.network.measure_pace`), covers
# PASSES times the rows fine-tuning needs (one epoch, at most FINE_TUNE_ROWS rows) with a validation
# pass each time, in the network's time; else the frozen backbone, when its one embedding pass over
# every split (FROZEN_OVERHEAD for the head's epochs) fits; else none.
# One pass of full fine-tuning is where it overtakes the frozen backbone (python bench/strategy_by_time.py,
# tweets): at 35 s the frozen network scored 0.726 test macro-F1 and a full fine-tune cut at half a pass
# 0.616; at 60 s (1.1 passes) 0.726 against 0.699, but the blends with LightGBM 0.786 against 0.794;
# at 120 s (2.4 passes) 0.726 against 0.771. Top-k must afford three passes to be preferred to the
# frozen backbone: one epoch of top-k reached 0.623, the frozen backbone's 10 epochs 0.657 in half the
# time (docs/benchmarks.md).
PASSES = {"full": 1.0, "top-k": 3.0}
FROZEN_OVERHEAD = 1.2


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
        self.strategy_record: dict[str, Any] = {}
        self.pace: Any = None  # the network's measured cost (:meth:`pilot`), when the strategy is hone's to choose
        self.rows: dict[str, int] = {}  # rows per split, read with the pace

    def shallow(self, pre: Preprocessor, paths: dict[str, Path], cfg: ResolvedRunConfig) -> Baseline | None:
        """The baseline (or ensemble) fitted before the network, when :attr:`prefits`."""
        return None

    def pilot(self, cfg: ResolvedRunConfig, pre: Preprocessor, paths: dict[str, Path]) -> None:
        """Measure what the network costs on this table, before the shallow stage, when the user left the
        fine-tuning strategy to hone (:meth:`strategy` then chooses from it)."""

    def strategy(self, cfg: ResolvedRunConfig, pre: Preprocessor, paths: dict[str, Path]) -> str | None:
        """The fine-tuning strategy for the time left, when the user left it to hone; None: no network."""
        return cfg.model.strategy

    def network(self, cfg: ResolvedRunConfig) -> ResolvedRunConfig:
        """The network's settings for the time left (its training time budget)."""
        return cfg

    def after_network(self, prefit: Baseline | None) -> Baseline | None:
        """The prefitted baseline again once the network has trained: a planner may use the time the
        network left (it stopped early) to fit more shallow models and return a better one."""
        return prefit

    def beside_network(self, prefit: Baseline | None, network_validation: np.ndarray) -> Baseline | None:
        """The prefitted baseline to blend with the trained network, given the network's validation outputs:
        a planner may select its ensemble again with the network among the candidates, so that it keeps
        the members that add to the network rather than those that repeat it."""
        return prefit

    def baseline_rule_rows(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(targets, outputs)`` of the prefitted baseline on more rows than the validation split (a bagged
        ensemble's out-of-fold rows), to fit its calibration and decision rule on; None: validation."""
        return None

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
            if self.strategy_record:
                out["budget"]["network_strategy"] = self.strategy_record
        return out


class TimeLimit(Planner):
    """``--time-limit``: the default baseline first, then the network in what is left."""

    prefits = True
    network_optional = False  # True: :meth:`strategy` may answer that no network fits (hone auto)

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

    def pilot(self, cfg: ResolvedRunConfig, pre: Preprocessor, paths: dict[str, Path]) -> None:
        from hone.pipeline.network import measure_pace

        self.pace = measure_pace(cfg, pre, paths["train"])
        self.rows = {s: split_rows(p) for s, p in paths.items()}

    def afford(self, seconds: float) -> tuple[str | None, str]:
        """:func:`affordable` at the pace the pilot measured, on this run's splits."""
        rows = self.rows
        return affordable(self.pace, seconds, rows["train"], rows.get("validation", 0), sum(rows.values()))

    def strategy(self, cfg: ResolvedRunConfig, pre: Preprocessor, paths: dict[str, Path]) -> str | None:
        pace = self.pace  # measured by :meth:`pilot` before the shallow stage
        chosen, why = self.afford(self.network_seconds())
        self.strategy_record = {"chosen": chosen, "why": why, "pilot_seconds": round(pace.seconds, 2),
                                "embedding_seconds": round(pace.forward * sum(self.rows.values()), 2),
                                "seconds_per_row": {"forward": pace.forward, "top-k": pace.top_k, "full": pace.full}}
        logger.info("time limit: %s (pace measured in %.1f s)", why, pace.seconds)
        if chosen is None and not self.network_optional:
            chosen = "top-k"  # hone fit trains a network whatever the time: the cheapest one its time budget stops
            why += "; top-k trains for what the time allows"
            self.strategy_record.update(chosen=chosen, why=why)
        self.cuts.append(f"network strategy {chosen or 'none'}: {why}")
        return chosen

    def network_seconds(self, left: float | None = None) -> float:
        """The network's training time if it started with ``left`` seconds (default: now): less the reserve."""
        return max(1.0, (self.clock.left() if left is None else left) * (1 - RESERVE_SHARE) - RESERVE_SECONDS)

    def network(self, cfg: ResolvedRunConfig) -> ResolvedRunConfig:
        left = self.clock.left()
        budget = self.network_seconds()
        if cfg.model.strategy == "frozen" and self.strategy_record:  # its embedding pass runs before the training
            budget = max(1.0, budget - self.strategy_record["embedding_seconds"])
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


def affordable(pace: Any, seconds: float, train_rows: int, validation_rows: int, all_rows: int | None = None
               ) -> tuple[str | None, str]:
    """The strategy ``seconds`` of training affords at ``pace`` (see PASSES), and why, in words
    (``all_rows``: every split's, which the frozen backbone embeds before training).

    Example:
        >>> from hone.pipeline.network import Pace
        >>> pace = Pace(forward=0.001, top_k=0.0015, full=0.008, seconds=2.0)
        >>> [affordable(pace, t, 4_000, 500)[0] for t in (60, 25, 12, 5)]
        ['full', 'top-k', 'frozen', None]
    """
    from hone.config import FINE_TUNE_ROWS

    rows = min(train_rows, FINE_TUNE_ROWS)
    short = []
    for name in ("full", "top-k"):
        need = PASSES[name] * (rows * pace.step(name) + validation_rows * pace.forward)
        if need <= seconds:
            passes = f"{PASSES[name]:g} pass{'' if PASSES[name] == 1 else 'es'}"
            return name, f"{name} fine-tuning ({passes} over {rows:,} rows need about {need:.0f} s " \
                         f"of the network's {seconds:.0f} s)"
        short.append(f"{name} would need about {need:.0f} s")
    need = FROZEN_OVERHEAD * (all_rows or train_rows + validation_rows) * pace.forward
    if need <= seconds:
        return "frozen", f"the frozen backbone ({', '.join(short)} of the network's {seconds:.0f} s; its embeddings " \
                         f"need about {need:.0f} s)"
    return None, f"no network ({', '.join(short)}, the frozen backbone's embeddings {need:.0f} s, of the " \
                 f"network's {seconds:.0f} s)"


def split_rows(path: Path) -> int:
    """Rows of a split file (from its metadata)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)
