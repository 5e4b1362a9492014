"""``hone tune``: an Optuna study over the training configuration, then a refit of the best one.

The data stages (read, split) run once per process; each trial resolves its configuration, trains
the network and returns its best validation metric (the test split is never looked at). Poor
trials are pruned from the metric at each evaluation. The study lives in ``OUTPUT/study.db``
(SQLite), so the same command resumes an interrupted search, and ``--jobs N`` processes share it.
The best configuration is then refitted as an ordinary run in ``OUTPUT/best`` (its report gains the
search), evaluated once on test.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from hone._logging import get_logger
from hone.config import RunConfig, build_config
from hone.errors import ConfigError
from hone.evaluation.metrics import HIGHER_IS_BETTER
from hone.search.space import backbone_layers, build_space, dotted, explicit_settings, suggest
from hone.search.trials import median, sampler, search_end, train_trial, trial_record
from hone.train.callbacks import Callback

logger = get_logger("hone.tune")

STUDY = "hone"
REQUEST = ".tune-request.json"  # what worker processes read: the config and the source
FINISHED = ("COMPLETE", "PRUNED")


class Interrupts:
    """Ctrl-C reaches a trial's training, never Optuna's own bookkeeping.

    An interrupt that lands inside a storage write (a trial being created, told or reported) can leave
    the SQLite study locked, or Optuna's state half-set ("Should not reach."), so that the process hangs
    or dies with a traceback instead of exiting with its one line. While :meth:`shielded`, a SIGINT is
    held and raised as ``KeyboardInterrupt`` the moment the shielded code is done; inside
    :meth:`unshielded` (the training itself) it is raised at once, as usual.
    """

    def __init__(self) -> None:
        self.depth, self.pending = 0, False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handler)
        try:
            with self.shielded():
                yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def shielded(self) -> Any:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.pending:
                self.pending = False
                raise KeyboardInterrupt

    def check(self) -> None:
        """Raise a held interrupt now (between two trials)."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def unshielded(self) -> Any:
        depth, self.depth = self.depth, 0
        try:
            self.check()
            yield
        finally:
            self.depth = depth


class PruneOnValidation(Callback):
    """Report the validation metric to the trial at each evaluation and stop a trial Optuna prunes."""

    def __init__(self, trial: Any, metric: str, interrupts: Interrupts) -> None:
        self.trial, self.metric, self.evals, self.pruned = trial, metric, 0, False
        self.interrupts = interrupts

    def on_evaluate(self, state: Any, *, metrics: dict[str, Any], is_best: bool) -> None:
        self.evals += 1
        value = float(metrics[self.metric])
        if math.isnan(value):
            return
        with self.interrupts.shielded():  # storage writes
            self.trial.report(value, self.evals)
            prune = self.trial.should_prune()
        if prune:
            self.pruned = True
            state.should_stop = True
            state.stop_reason = f"pruned after evaluation {self.evals}"


def _storage(out: Path) -> Any:
    """SQLite in the output folder; a trial whose process died (no heartbeat for 30 s) is failed and
    its parameters tried again once."""
    import warnings

    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5, and what a crash needs
        warnings.simplefilter("ignore")
        return RDBStorage(f"sqlite:///{out / 'study.db'}", engine_kwargs={"connect_args": {"timeout": 60}},
                          heartbeat_interval=10, grace_period=30,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))


def _pruner(cfg: RunConfig) -> Any:
    import optuna

    t = cfg.tune
    if t.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(2, t.trials // 4)), n_warmup_steps=1)
    if t.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    return optuna.pruners.NopPruner()


def _identity(cfg: RunConfig, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """What must stay the same for a study to be resumed: everything but the search's size and time."""
    tree = cfg.model_dump(mode="json")
    for k in ("trials", "timeout", "jobs"):
        tree["tune"].pop(k, None)
    tree["train"].pop("num_threads", None)
    tree["train"].pop("show_progress", None)
    return {"config": tree, "rows": fingerprint.get("rows"), "content_hash": fingerprint.get("content_hash")}


def _finished(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def run_tune(cfg: RunConfig, source: Any, out: Path, *, worker: bool = False, deadline: float | None = None,
             command: list[str] | None = None) -> dict[str, Any]:
    """Run (or resume) the study in ``out`` and, in the main process, refit the best configuration
    (``command``: the command line its run folder records). Returns the summary written to ``out/tune.json``."""
    optuna = _import_optuna()
    t0 = time.time()
    if deadline is None and cfg.tune.timeout:
        deadline = t0 + cfg.tune.timeout
    if cfg.tune.choice_fraction > 0:  # the refit's model choice on validation rows the search never saw
        cfg = build_config(cfg, {"data.split.choice_fraction": cfg.tune.choice_fraction})
    base = cfg
    if cfg.tune.jobs > 1:  # the cores are shared between the processes
        from hone._ray import local_cores

        cfg = build_config(cfg, {"train.num_threads": max(1, local_cores() // cfg.tune.jobs)})
    made = [p for p in (out.absolute(), *out.absolute().parents) if not p.exists()]  # child first
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        from hone.pipeline.data_stages import prepare

        prep = prepare(cfg, source, work, audit=False)
        rcfg = prep.resolve(cfg)
        metric, space = rcfg.train.metric, _space(cfg, rcfg, prep.hardware["has_text"], worker)
        on_ray = cfg.engine.kind == "ray" and not worker
        study = _open_study(optuna, cfg, out, prep.split.fingerprint, metric, on_ray)
        defaults = default_params(space, rcfg, clip=on_ray)  # trial 0 is the default configuration: the yardstick
        if not on_ray and not worker and not study.trials and defaults:
            study.enqueue_trial(defaults, user_attrs={"defaults": True})
        parent = _parent_run(study, cfg, out, space, worker)
        parent_id = parent.run_id if parent else study.user_attrs.get("mlflow_run_id")
        if not worker and not on_ray:
            workers = _resume_or_start(study, cfg, source, out, space, metric, deadline)
        try:
            study = _search(study, cfg, prep, out, space, metric, defaults, deadline, parent_id, on_ray, workers)
            if worker:
                return {}
            summary = _conclude(study, base, source, out, deadline, space, metric, t0, parent_id, command)
        except BaseException as err:
            if parent is not None:
                parent.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        if parent is not None:
            _log_search(parent, out, summary)
        return summary
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        shutil.rmtree(work, ignore_errors=True)
        for p in made:  # failed before the study existed: the folders made for it go again
            with contextlib.suppress(OSError):
                p.rmdir()  # only if empty


def _resume_or_start(study: Any, cfg: RunConfig, source: Any, out: Path, space: dict[str, Any], metric: str,
                     deadline: float | None) -> list[subprocess.Popen[bytes]]:
    """Say how far the study is; start the other ``--jobs`` processes while trials remain."""
    done = _finished(study)
    logger.info("search of %s over %s: %d of %d trial(s) finished so far (study %s)", metric,
                ", ".join(space), done, cfg.tune.trials, out / "study.db")
    if cfg.tune.jobs > 1 and done < cfg.tune.trials:
        return _start_workers(cfg, source, out, cfg.tune.jobs - 1, deadline)
    return []


def _search(study: Any, cfg: RunConfig, prep: Any, out: Path, space: dict[str, Any], metric: str,
            defaults: dict[str, Any], deadline: float | None, parent_id: str | None, on_ray: bool,
            workers: list[subprocess.Popen[bytes]]) -> Any:
    """Run the trials here (and wait for the other processes), or on Ray Tune; returns the study."""
    if on_ray:  # Ray Tune's trials, gathered into an in-memory Optuna study for the summary
        from hone.search.ray_search import search_on_ray

        study = search_on_ray(cfg, prep, out, space, metric, defaults, deadline, parent_id)
    else:
        _optimize(study, cfg, prep, space, metric, deadline, parent_id)
    for w in workers:
        w.wait()
    if workers:
        (out / REQUEST).unlink(missing_ok=True)
    return study


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as err:
        from hone.errors import MissingDependencyError

        raise MissingDependencyError("hone tune needs Optuna: pip install 'hone[tune]'") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _space(cfg: RunConfig, rcfg: Any, has_text: bool, worker: bool) -> dict[str, Any]:
    """The space searched: the strategy's defaults without what the user set, updated by tune.space."""
    fixed = explicit_settings(cfg) - set(cfg.tune.space)
    space = build_space(rcfg.model.strategy, has_text, cfg.tune.space, replace=cfg.tune.replace_space,
                        backbone_layers=backbone_layers(rcfg.model.backbone if has_text else None), fixed=fixed)
    if fixed and not worker:
        logger.info("not searched, as set: %s", ", ".join(sorted(fixed)))
    if not space:
        raise ConfigError("tune.space is empty: nothing to search")
    return space


def _open_study(optuna: Any, cfg: RunConfig, out: Path, fingerprint: dict[str, Any], metric: str,
                on_ray: bool) -> Any:
    """The study in ``out`` (made, or resumed when it was started on the same data and settings)."""
    if on_ray:  # Ray Tune keeps its trials; the identity and the MLflow run live beside them
        from hone.search.ray_search import SearchAttrs

        study: Any = SearchAttrs(out / "search.json")
    else:
        study = optuna.create_study(storage=_storage(out), study_name=STUDY, sampler=sampler(cfg),
                                    pruner=_pruner(cfg), load_if_exists=True,
                                    direction="maximize" if HIGHER_IS_BETTER[metric] else "minimize")
    identity = _identity(cfg, fingerprint)
    saved = study.user_attrs.get("identity")
    if saved is None:
        study.set_user_attr("identity", identity)
    elif saved != identity:
        raise ConfigError(f"the study in {str(out)!r} was started with other data or settings; resume it with "
                          "the same command, or choose another --output")
    return study


def _conclude(study: Any, base: RunConfig, source: Any, out: Path, deadline: float | None, space: dict[str, Any],
              metric: str, t0: float, parent_id: str | None, command: list[str] | None) -> dict[str, Any]:
    """The summary, the refit of the best trial in ``out/best`` and its report."""
    from hone.pages.report import write_report

    summary = summarize(study, base, space, metric, time.time() - t0)
    _write_summary(out, summary)
    summary["refit"] = _refit(study, base, source, out, deadline, summary, parent_id, command)
    _write_summary(out, summary)
    shutil.copy(out / "tune.json", out / "best" / "tune.json")
    write_report(out / "best")
    return summary


def _log_search(parent: Any, out: Path, summary: dict[str, Any]) -> None:
    best = summary["refit"]
    parent.log_metrics({"best_validation": summary["best"]["value"], "finished_trials": summary["finished"],
                        "pruned_trials": summary["pruned"],
                        **{f"importance.{k}": v for k, v in summary["importances"].items()},
                        **{f"test.{k}": v for k, v in (best.get("test") or {}).items()}})
    parent.log_run_folder(out, model=False)
    parent.end()


def default_params(space: dict[str, Any], rcfg: Any, *, clip: bool = False) -> dict[str, Any]:
    """The resolved config's values of the searched parameters that lie inside the space; with
    ``clip``, every searched parameter, the ones outside brought to the nearest end (or the first
    choice), for searchers that need a whole point."""
    tree = rcfg.model_dump(mode="json")
    out = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            continue
        node: Any = tree
        for part in dotted(name).split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if "choices" in spec:
            if node in spec["choices"]:
                out[name] = node
            elif clip:
                out[name] = spec["choices"][0]
            continue
        ints = isinstance(spec["low"], int) and isinstance(spec["high"], int)
        if not isinstance(node, (int, float)) or isinstance(node, bool) or (ints and not float(node).is_integer()):
            if clip:
                out[name] = spec["low"] if ints else float(spec["low"])
            continue
        if clip or spec["low"] <= node <= spec["high"]:
            value = min(max(node, spec["low"]), spec["high"])
            out[name] = int(value) if ints else float(value)
    return out


def _parent_run(study: Any, cfg: RunConfig, out: Path, space: dict[str, Any], worker: bool) -> Any:
    """The search's MLflow run (reopened when the search resumes); trials and the refit nest under it."""
    from hone.tracking import Tracker, wanted

    if worker or not wanted(cfg):
        return None
    parent = Tracker(cfg, name=f"tune {out.name}", kind="tune", run_id=study.user_attrs.get("mlflow_run_id"))
    params = {"tune.sampler": cfg.tune.sampler, "tune.pruner": cfg.tune.pruner, "tune.refit": cfg.tune.refit,
              "tune.space": json.dumps(space)}
    study.set_user_attr("mlflow_run_id", parent.start(params, tags={"hone.study": str(out / "study.db")}))
    return parent


def _start_workers(cfg: RunConfig, source: Any, out: Path, n: int, deadline: float | None) -> list[subprocess.Popen]:
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError("--jobs above 1 needs a file, directory, glob or sql: source (each process reads it)")
    from hone._io import write_json

    write_json(out / REQUEST, {"config": cfg.model_dump(mode="json"), "source": str(source), "deadline": deadline})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return [subprocess.Popen([sys.executable, "-m", "hone", "-q", "tune", "--worker", str(out)], env=env)
            for _ in range(n)]


def run_worker(out: Path) -> None:
    """A process started by ``--jobs``: read the request, run trials until the study has enough."""
    req = json.loads((out / REQUEST).read_text(encoding="utf-8"))
    run_tune(build_config(req["config"]), req["source"], out, worker=True, deadline=req.get("deadline"))


def _optimize(study: Any, cfg: RunConfig, prep: Any, space: dict[str, Any], metric: str, deadline: float | None,
              parent_run: str | None) -> None:
    import optuna

    durations: list[float] = [t.duration.total_seconds() for t in study.get_trials(deepcopy=False)
                              if t.duration and t.state.name == "COMPLETE"]

    interrupts = Interrupts()

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        budget = None if deadline is None else max(1.0, search_end(deadline, durations) - time.time())
        pruning = PruneOnValidation(trial, metric, interrupts)
        with interrupts.unshielded():
            st = train_trial(prep, cfg, params, pruning, budget=budget, parent_run=parent_run,
                             name=f"trial {trial.number}")
        for k, v in trial_record(st, pruning).items():
            trial.set_user_attr(k, v)
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        if pruning.pruned:
            logger.info("trial %d: %s -> pruned after %d evaluation(s)", trial.number, shown, pruning.evals)
            raise optuna.TrialPruned()
        if st.best_metric is None or math.isnan(st.best_metric):
            raise optuna.TrialPruned()  # nothing measurable (e.g. diverged): as good as pruned
        logger.info("trial %d: %s -> validation %s %.4f (%s)", trial.number, shown, metric, st.best_metric,
                    st.stop_reason or "completed")
        return float(st.best_metric)

    with interrupts.installed():
        while _finished(study) < cfg.tune.trials:
            interrupts.check()
            if deadline is not None and time.time() + (median(durations) or 0.0) > search_end(deadline, durations):
                logger.info("time budget: the search stops to leave the refit its time (%d trial(s) finished)",
                            _finished(study))
                break
            start = time.time()
            study.optimize(objective, n_trials=1, catch=())
            last = study.trials[-1] if study.trials else None
            if last is not None and last.state.name == "COMPLETE":
                durations.append(time.time() - start)


def summarize(study: Any, cfg: RunConfig, space: dict[str, Any], metric: str, seconds: float) -> dict[str, Any]:
    """Trials, the best one and parameter importances, as written to ``tune.json``."""
    import optuna

    trials = []
    for t in study.get_trials(deepcopy=False):
        trials.append({"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": t.params,
                       "seconds": round(t.duration.total_seconds(), 2) if t.duration else None,
                       "intermediate": [[int(k), v] for k, v in sorted(t.intermediate_values.items())],
                       **{k: v for k, v in t.user_attrs.items()}})
    completed = [t for t in trials if t["state"] == "complete"]
    best = None
    if completed:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": b.params, "best_epoch": b.user_attrs.get("best_epoch")}
    importances: dict[str, float] = {}
    if len(completed) >= 2:
        try:
            with warnings.catch_warnings():  # e.g. "importances will be equal" on a handful of trials
                warnings.simplefilter("ignore")
                found = optuna.importance.get_param_importances(study)
            importances = {k: round(float(v), 4) for k, v in found.items()}
        except (RuntimeError, ValueError) as err:  # e.g. every completed trial had the same parameters
            logger.info("no parameter importances: %s", err)
    return {"metric": metric, "direction": study.direction.name.lower(), "trials_requested": cfg.tune.trials,
            "finished": sum(t["state"] in ("complete", "pruned") for t in trials),
            "pruned": sum(t["state"] == "pruned" for t in trials), "engine": cfg.engine.kind,
            "searcher": cfg.tune.searcher if cfg.engine.kind == "ray" else "optuna", "sampler": cfg.tune.sampler,
            "pruner": cfg.tune.pruner, "space": space, "best": best, "importances": importances,
            "search_seconds": round(seconds, 1), "trials": trials}


def _write_summary(out: Path, summary: dict[str, Any]) -> None:
    import csv
    import io

    from hone._io import write_json, write_text

    write_json(out / "tune.json", summary)
    names = sorted({k for t in summary["trials"] for k in t["params"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", "value", "seconds", "best_epoch", "stop_reason", *names])
    for t in summary["trials"]:
        w.writerow([t["number"], t["state"], t["value"], t["seconds"], t.get("best_epoch"), t.get("stop_reason"),
                    *[t["params"].get(n) for n in names]])
    write_text(out / "trials.csv", buf.getvalue())


def _refit(study: Any, cfg: RunConfig, source: Any, out: Path, deadline: float | None,
           summary: dict[str, Any], parent_run: str | None = None, command: list[str] | None = None) -> dict[str, Any]:
    """Fit the best configuration as an ordinary run in ``out/best``; test is scored there, once."""
    from hone.pipeline.dispatch import FitRequest, fit

    best = summary["best"]
    if best is None:
        raise ConfigError(f"no trial of the study in {str(out)!r} completed (all pruned or failed): widen the "
                          "search space or run more trials")
    overrides: dict[str, Any] = {dotted(k): v for k, v in summary["space"].items() if not isinstance(v, dict)}
    overrides.update({dotted(k): v for k, v in best["params"].items()})
    overrides["engine.kind"] = "local"  # engine.workers ran trials side by side; the refit is one ordinary fit
    if cfg.tune.refit == "train+validation":
        overrides.update({"train.fit_on": "train+validation", "train.epochs": max(1, int(best["best_epoch"] or 1))})
    if deadline is not None:
        overrides["train.time_budget"] = max(1.0, deadline - time.time() - 10.0)
        if cfg.evaluate.explain == "auto":  # the explanation pass is not in the budget: hone explain runs it later
            overrides["evaluate.explain"] = False
    done = out / "best" / "tune.json"
    if done.is_file() and (out / "best" / "metrics.json").is_file():
        previous = json.loads(done.read_text(encoding="utf-8")).get("refit") or {}
        if previous.get("trial") == best["number"] and previous.get("fit_on") == cfg.tune.refit:
            logger.info("the best trial (%d) was already refitted in %s", best["number"], out / "best")
            return previous
    logger.info("refitting trial %d's configuration (validation %s %.4f) on %s", best["number"], summary["metric"],
                best["value"], cfg.tune.refit)
    model = fit(FitRequest(source, config=build_config(cfg, overrides), output=out / "best", overwrite=True,
                           track_parent=parent_run, command=command))
    assert model is not None  # a search runs on the main process
    return {"trial": best["number"], "fit_on": cfg.tune.refit, "dir": "best",
            "validation": model.meta["metrics"].get("validation"), "test": model.meta["metrics"].get("test")}
