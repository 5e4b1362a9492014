"""``hone tune --engine ray``: the search's trials as Ray Tune trials, side by side on a Ray cluster.

The data is read and split once, by the driver; every trial gets those splits through Ray's object
store and trains with hone's own loop (:func:`hone.search.trials.train_trial`), reporting its
validation metric at each evaluation. Ray Tune chooses the parameters (Optuna's sampler by
default, Hyperopt's TPE with ``tune.searcher: hyperopt``), runs ``engine.workers`` trials at once,
and stops poor ones through its schedulers (``tune.pruner``: median -> the median stopping rule,
hyperband -> ASHA). The trials are then gathered into an in-memory Optuna study, so the summary,
importances, ``trials.csv`` and the refit are the local search's own. Ray Tune's experiment state
lives in ``OUTPUT/ray``: the same command resumes it. On a cluster, OUTPUT must be on storage
every node reaches (the split files and Ray Tune's state are there).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from hone._io import write_json
from hone._logging import get_logger
from hone.config import RunConfig
from hone.errors import ConfigError
from hone.evaluation.metrics import HIGHER_IS_BETTER
from hone.train.callbacks import Callback

logger = get_logger("hone.tune")

SCORE = "best_validation"  # what the searcher and the schedulers read: the best validation metric so far
EXPERIMENT = "ray"  # OUTPUT/ray: Ray Tune's experiment folder
DEADLINE = "deadline.json"  # this command's deadline, read by the stopper (a restored one was pickled with the old)
TIME_UP = "time-up"  # written by the stopper when it ended the search for the refit's time


class SearchAttrs:
    """What a Ray search keeps beside Ray Tune's state (its identity, its MLflow run) in a JSON file,
    read and written like an Optuna study's ``user_attrs``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.user_attrs: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value
        write_json(self.path, self.user_attrs)


class ReportToTune(Callback):
    """Report each evaluation to Ray Tune. When its scheduler stops the trial, the report does not
    return (Ray ends the trial's thread)."""

    def __init__(self, metric: str) -> None:
        self.metric, self.higher, self.evals = metric, HIGHER_IS_BETTER[metric], 0
        self.best: float | None = None
        self.pruned = False  # a trial Ray Tune stops never returns from tune.report: nothing sets it

    def on_evaluate(self, state: Any, *, metrics: dict[str, Any], is_best: bool) -> None:
        from ray import tune

        from hone.search.trials import process_name

        self.evals += 1
        value = float(metrics[self.metric])
        if math.isnan(value):
            return
        if self.best is None or (value > self.best if self.higher else value < self.best):
            self.best = value
        tune.report({SCORE: self.best, "value": value, "evaluation": self.evals, "process": process_name()})


def run_trial(params: dict[str, Any], *, prep: Any, cfg: dict[str, Any], metric: str, cwd: str,
              deadline_file: str, parent_run: str | None) -> None:
    """One Ray Tune trial: ``params`` over the config, trained on the driver's splits."""
    from ray import tune

    from hone.config import build_config
    from hone.pipeline.data_stages import adopt
    from hone.search.trials import train_trial, trial_record

    os.chdir(cwd)  # Ray Tune moved into the trial's folder: relative paths mean what they meant for the command
    deadline = _read_deadline(Path(deadline_file))
    number = _number(Path(tune.get_context().get_trial_dir()).name)
    run_cfg = build_config(cfg)
    with tempfile.TemporaryDirectory(prefix="hone-trial-") as tmp:  # DuckDB's spill folder, this trial's own
        report = ReportToTune(metric)
        budget = None if deadline is None else max(1.0, deadline - time.time() - 10.0)
        st = train_trial(adopt(prep, run_cfg, Path(tmp)), run_cfg, params, report, budget=budget,
                         parent_run=parent_run, name=f"trial {number}")
    value = st.best_metric
    # "evaluation" as in the last report: the schedulers keep every result and read it from each
    final = {"finished": True, "evaluation": report.evals, **trial_record(st, report)}
    if value is not None and not math.isnan(value):
        final[SCORE] = float(value)
    tune.report(final)


def _number(name: str) -> int:
    """The trial's position in the search (from 0), from Ray Tune's folder name for it
    (``run_trial_<8 hex id>_<n>_<params>_<date>``) or its experiment tag (``<n>_<params>``)."""
    import re

    m = re.search(r"(?:^|_[0-9a-f]{8}_)(\d+)(?:_|$)", name)
    return int(m.group(1)) - 1 if m else -1


def _read_deadline(path: Path) -> float | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("deadline")
    except (OSError, ValueError):
        return None


def _stopper(deadline_file: Path) -> Any:
    """Stop the whole search when the next trial would eat into the refit's time
    (see :func:`hone.search.trials.search_end`)."""
    from ray.tune.stopper import Stopper

    from hone.search.trials import median, search_end

    class LeaveTimeForRefit(Stopper):
        def __init__(self) -> None:
            self.durations: list[float] = []
            self.said = False

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            if result.get("finished"):
                self.durations.append(float(result.get("time_total_s", 0.0)))
            return False

        def stop_all(self) -> bool:
            deadline = _read_deadline(deadline_file)  # this command's, also after a restore
            stop = deadline is not None and time.time() + (median(self.durations) or 0.0) > search_end(
                deadline, self.durations)
            if stop and not self.said:
                self.said = True
                deadline_file.with_name(TIME_UP).touch()
                logger.info("time budget: the search stops to leave the refit its time")
            return stop

    return LeaveTimeForRefit()


def tune_space(space: dict[str, Any]) -> dict[str, Any]:
    """hone's search space as Ray Tune's (whose integer ranges exclude the upper end)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from ray import tune

    from hone.search.space import distributions

    dists = distributions(space)
    out: dict[str, Any] = {}
    for name, spec in space.items():
        d = dists.get(name)
        if d is None:
            out[name] = spec
        elif isinstance(d, CategoricalDistribution):
            out[name] = tune.choice(list(d.choices))
        elif isinstance(d, IntDistribution):
            out[name] = (tune.lograndint if d.log else tune.randint)(d.low, d.high + 1)
        else:
            out[name] = (tune.loguniform if d.log else tune.uniform)(d.low, d.high)
    return out


def _searcher(cfg: RunConfig, metric: str, defaults: dict[str, Any]) -> Any:
    from ray.tune.search import ConcurrencyLimiter

    t, mode = cfg.tune, "max" if HIGHER_IS_BETTER[metric] else "min"
    points = [defaults] if defaults else None  # trial 0 is the default configuration, as in a local search
    if t.searcher == "hyperopt":
        if t.sampler == "random" and "sampler" in t.model_fields_set:
            raise ConfigError("tune.sampler random goes with the optuna searcher; Hyperopt's searcher is TPE")
        try:
            from ray.tune.search.hyperopt import HyperOptSearch
        except ImportError as err:
            from hone.errors import MissingDependencyError

            raise MissingDependencyError("--searcher hyperopt needs Hyperopt: pip install 'hone[ray]'") from err
        search = HyperOptSearch(metric=SCORE, mode=mode, points_to_evaluate=points, random_state_seed=t.seed,
                                n_initial_points=min(10, max(2, t.trials // 3)))
    else:
        from ray.tune.search.optuna import OptunaSearch

        from hone.search.trials import sampler

        search = OptunaSearch(metric=SCORE, mode=mode, points_to_evaluate=points, sampler=sampler(cfg))
    return ConcurrencyLimiter(search, max_concurrent=cfg.engine.workers)


def _scheduler(cfg: RunConfig, metric: str) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    mode, t = "max" if HIGHER_IS_BETTER[metric] else "min", cfg.tune
    if t.pruner == "median":
        return MedianStoppingRule(time_attr="evaluation", metric=SCORE, mode=mode, grace_period=1,
                                  min_samples_required=min(5, max(2, t.trials // 4)))
    if t.pruner == "hyperband":  # ASHA: Hyperband's asynchronous successive halving
        return ASHAScheduler(time_attr="evaluation", metric=SCORE, mode=mode, max_t=10**6, grace_period=1,
                             reduction_factor=3)
    return FIFOScheduler()


def _progress() -> Any:
    """Say on the console how each trial ended, as the local search does."""
    from ray.tune import Callback as TuneCallback

    class Progress(TuneCallback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            r = trial.last_result or {}
            shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items())
            n = _number(trial.experiment_tag)
            if r.get("finished") and SCORE in r:
                logger.info("trial %d: %s -> validation %.4f (%s)", n, shown, r[SCORE], r.get("stop_reason"))
            else:
                logger.info("trial %d: %s -> pruned after %s evaluation(s)", n, shown, r.get("evaluation", 0))

    return Progress()


def search_on_ray(cfg: RunConfig, prep: Any, out: Path, space: dict[str, Any], metric: str,
                  defaults: dict[str, Any], deadline: float | None, parent_run: str | None) -> Any:
    """Run (or resume) the Ray Tune experiment in ``out/ray``; returns its trials as an in-memory
    Optuna study."""
    from hone._ray import import_ray, local_cores, raise_user_error, start_ray

    ray = import_ray()
    from ray import tune

    if cfg.tune.jobs > 1:
        raise ConfigError("--jobs starts processes on this machine; with --engine ray, --workers sets how many "
                          "trials run at once")
    e = cfg.engine
    exp = out.absolute() / EXPERIMENT
    exp.mkdir(parents=True, exist_ok=True)
    write_json(exp / DEADLINE, {"deadline": deadline})
    (exp / TIME_UP).unlink(missing_ok=True)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # hone prints its own summary
    started = start_ray(e.address, max(local_cores(), int(e.workers * e.cpus_per_worker)))
    trial_cfg = cfg.model_dump(mode="json", exclude_unset=True)
    trial_cfg.setdefault("train", {})["num_threads"] = max(1, int(e.cpus_per_worker))  # a trial's CPUs
    try:
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, prep=prep, cfg=trial_cfg, metric=metric, cwd=os.getcwd(),
                                 deadline_file=str(exp / DEADLINE), parent_run=parent_run),
            {"cpu": e.cpus_per_worker, **({"gpu": e.gpus_per_worker} if e.gpus_per_worker else {})})
        if tune.Tuner.can_restore(str(exp)):
            logger.info("resuming the Ray Tune search in %s", exp)
            tuner = tune.Tuner.restore(str(exp), trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            logger.info("search of %s over %s on Ray: %d trial(s), %d at once, searcher %s, scheduler %s%s", metric,
                        ", ".join(space), cfg.tune.trials, e.workers, cfg.tune.searcher, cfg.tune.pruner,
                        f", cluster {e.address}" if e.address else ", local Ray instance")
            tuner = tune.Tuner(
                trainable, param_space=tune_space(space),
                tune_config=tune.TuneConfig(search_alg=_searcher(cfg, metric, defaults),
                                            scheduler=_scheduler(cfg, metric), num_samples=cfg.tune.trials,
                                            reuse_actors=True),
                run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(out.absolute()), verbose=0,
                                          stop=_stopper(exp / DEADLINE), callbacks=[_progress()],
                                          failure_config=tune.FailureConfig(fail_fast=True)))
        results = _run_quietly(tuner)
        unfinished = len(results) - results.num_terminated - results.num_errors
        if (unfinished or len(results) < cfg.tune.trials) and not (exp / TIME_UP).exists():
            # Ray Tune caught Ctrl+C, saved its state and returned: the search is interrupted, not over
            raise KeyboardInterrupt
    except Exception as err:
        raise_user_error(err)
        raise
    finally:
        if started:
            ray.shutdown()
    return gather(results, space, metric, defaults)


def _run_quietly(tuner: Any) -> Any:
    """``tuner.fit()`` without Ray Tune's logging of a failed trial's traceback: the trial's error is
    raised here instead (hone's own one line, when it is one)."""
    import logging

    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():  # OptunaSearch re-reporting a step: Tune's scheduler prunes, not Optuna
            warnings.filterwarnings("ignore", message="The reported value is ignored", category=UserWarning)
            results = tuner.fit()
    finally:
        tune_log.setLevel(level)
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise errors[0]
    return results


def gather(results: Any, space: dict[str, Any], metric: str, defaults: dict[str, Any]) -> Any:
    """Ray Tune's results as an in-memory Optuna study (trials numbered as Ray numbered them)."""
    import datetime as dt

    import optuna

    from hone.search.space import distributions

    dists = distributions(space)
    study = optuna.create_study(direction="maximize" if HIGHER_IS_BETTER[metric] else "minimize")
    rows = sorted(results, key=lambda r: _number(Path(r.path).name))
    for r in rows:
        m, df = r.metrics or {}, r.metrics_dataframe
        inter: dict[int, float] = {}
        if df is not None and "evaluation" in df and "value" in df:
            for ev, v in zip(df["evaluation"], df["value"]):
                if ev == ev and v == v:  # not NaN (the final report has neither)
                    inter[int(ev)] = float(v)
        finished = bool(m.get("finished")) and SCORE in m
        params = {k: r.config[k] for k in dists if k in r.config}
        attrs = {k: v for k, v in m.items() if k in ("best_epoch", "epochs_run", "steps", "rows_per_second",
                                                      "stop_reason", "evaluations", "process")}
        if not finished:
            attrs.update({"stop_reason": f"pruned after evaluation {max(inter, default=0)}",
                          "evaluations": max(inter, default=0)})
        if defaults and r is rows[0] and all(params.get(k) == v for k, v in defaults.items()):
            attrs["defaults"] = True
        end = float(m.get("timestamp") or time.time())
        start = end - float(m.get("time_total_s") or 0.0)
        state = optuna.trial.TrialState.COMPLETE if finished else optuna.trial.TrialState.PRUNED
        study.add_trial(optuna.trial.FrozenTrial(
            number=len(study.trials), trial_id=len(study.trials), state=state,
            value=float(m[SCORE]) if finished else None, values=None,
            datetime_start=dt.datetime.fromtimestamp(start), datetime_complete=dt.datetime.fromtimestamp(end),
            params=params, distributions=dists, user_attrs=attrs, system_attrs={}, intermediate_values=inter))
    return study
