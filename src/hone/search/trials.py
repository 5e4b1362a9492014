"""One trial of a search, wherever it runs (an Optuna process or a Ray Tune trial): its training on the
prepared splits, its record, and the sampler and timing rules both searchers share."""

from __future__ import annotations

import os
import socket
from typing import Any

from hone.config import RunConfig, build_config
from hone.search.space import dotted


def sampler(cfg: RunConfig) -> Any:
    import optuna

    t = cfg.tune
    if t.sampler == "random":
        return optuna.samplers.RandomSampler(seed=t.seed)
    return optuna.samplers.TPESampler(seed=t.seed, n_startup_trials=min(10, max(2, t.trials // 3)))


def train_trial(prep: Any, cfg: RunConfig, params: dict[str, Any], pruning: Any, *, budget: float | None,
                parent_run: str | None, name: str) -> Any:
    """Train one trial's network (``params`` over ``cfg``) on the prepared splits; returns its
    training state. ``pruning``, a callback with ``evals`` and ``pruned``, reports each evaluation to
    the search (and stops a pruned trial);
    with ``parent_run`` the trial is an MLflow run nested under the search's."""
    from hone.pipeline.data_stages import fit_preprocessor
    from hone.pipeline.network import train_network

    overrides = {dotted(k): v for k, v in params.items()}
    overrides.update({"train.checkpoint": False, "train.show_progress": False})
    if budget is not None:
        overrides["train.time_budget"] = min(budget, cfg.train.time_budget or budget)
    rcfg = prep.resolve(build_config(cfg, overrides))
    pre = fit_preprocessor(prep, rcfg)
    tracker = None
    if parent_run is not None:
        from hone.tracking import Tracker

        tracker = Tracker(cfg, name=name, parent=parent_run, kind="trial")
        tracker.start(params, tags={"hone.trial": name.split()[-1]})
    try:
        trained = train_network(prep, rcfg, pre, [pruning, *([tracker.callback()] if tracker else [])], log=False)
    except BaseException as err:  # SystemExit: Ray Tune stopping a trial it pruned
        if tracker is not None:
            tracker.end("KILLED" if isinstance(err, (KeyboardInterrupt, SystemExit)) else "FAILED")
        raise
    st = trained.state
    if tracker is not None:
        if st.best_metric is not None:
            tracker.log_metrics({"best_validation": st.best_metric}, step=st.step)
        tracker.end("KILLED" if pruning.pruned else "FINISHED")  # MLflow has no "pruned"
    return st


def trial_record(st: Any, pruning: Any) -> dict[str, Any]:
    """What ``trials.csv`` and ``tune.json`` show of a trial besides its parameters and value."""
    return {"best_epoch": st.best_epoch, "epochs_run": st.epoch + 1, "steps": st.step,
            "rows_per_second": round(st.rows_per_second, 1), "stop_reason": st.stop_reason or "completed",
            "evaluations": pruning.evals, "process": process_name()}


def process_name() -> str:
    """Which machine and process ran a trial: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def median(xs: list[float]) -> float | None:
    return sorted(xs)[len(xs) // 2] if xs else None


def search_end(deadline: float, durations: list[float]) -> float:
    """When the search must stop: the refit needs about one full trial plus the baseline and report."""
    return deadline - 1.5 * (max(durations) if durations else 0.0) - 10.0
