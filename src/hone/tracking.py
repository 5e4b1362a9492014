"""Experiment tracking with MLflow: one run per fit, one per search with its trials nested under it.

A :class:`Tracker` logs through ``MlflowClient`` (no global active run, so a library call never
disturbs the caller's own MLflow runs): parameters (the resolved config, flattened), per-step
training loss and per-evaluation validation metrics (:meth:`Tracker.callback`), the final metrics,
and the run folder (config, metrics, audit, report, environment) and the model package as
artifacts. The default store is SQLite in ``./mlruns`` (MLflow 3's file store is in maintenance
and refuses to start); ``tracking.uri`` or ``$MLFLOW_TRACKING_URI`` point elsewhere, such as a
tracking server. MLflow is imported only when tracking is on.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from hone._logging import get_logger
from hone.train.callbacks import Callback

logger = get_logger("hone.tracking")

RUN_FILES = ("config.resolved.yaml", "metrics.json", "quality.json", "cleaning.json", "report.html",
             "environment.json", "data.fingerprint.json", "schema.json", "history.json", "tune.json", "trials.csv")


def wanted(cfg: Any) -> bool:
    """Whether this run is tracked: ``tracking.enabled``, or on auto, when MLflow is importable and
    ``$HONE_TRACKING`` is not ``off``/``0``/``false``."""
    from hone.config import tracking_available

    enabled = cfg.tracking.enabled
    if enabled is False:
        return False
    if enabled == "auto":
        if not tracking_available():
            if importlib.util.find_spec("mlflow") is None:
                logger.info("tracking is off: MLflow is not installed (pip install 'hone[track]')")
            return False
        return True
    if importlib.util.find_spec("mlflow") is None:
        from hone.errors import MissingDependencyError

        raise MissingDependencyError("tracking.enabled is true but MLflow is not installed: pip install 'hone[track]'")
    return True


def default_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlruns').absolute() / 'mlflow.db'}"


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Dotted keys over nested dicts (``train.lr``), values as text.

    Example:
        >>> flatten({"train": {"lr": 0.1, "seed": 1}, "name": None})
        {'train.lr': '0.1', 'train.seed': '1', 'name': 'None'}
    """
    out: dict[str, str] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": str(v)[:6000]})
    return out


class Tracker:
    """One MLflow run. ``parent`` nests it under another run (a search's trials and refit)."""

    def __init__(self, cfg: Any, *, name: str, parent: str | None = None, kind: str = "fit",
                 run_id: str | None = None) -> None:
        self.uri = cfg.tracking.uri or default_uri()
        self.experiment = cfg.tracking.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or "hone"
        self.name, self.parent, self.kind = name, parent, kind
        self.run_id: str | None = run_id
        self.client: Any = None
        self.broken = False  # a logging call failed mid-run: warned once, training goes on untracked

    def start(self, params: dict[str, Any] | None = None, tags: dict[str, str] | None = None) -> str:
        """Create (or reopen, with ``run_id``) the run and log ``params``; returns the run id."""
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # an unreachable server fails in seconds
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        try:
            return self._start(params, tags)
        except Exception as err:  # noqa: BLE001 - any MLflow or network error becomes one line
            from hone.errors import ConfigError

            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"MLflow tracking at {_shown(self.uri)} failed: {first[:300]} (set tracking.uri, "
                              "or pass --no-track)") from err

    def _start(self, params: dict[str, Any] | None, tags: dict[str, str] | None) -> str:
        import logging

        for name in ("mlflow", "alembic"):  # their INFO lines (schema migrations...) are not the user's business
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        if self.run_id is not None:  # a resumed fit or search continues its run (its params are logged)
            self.client.update_run(self.run_id, status="RUNNING")
            return self.run_id
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            where = None
            if self.uri.startswith("sqlite:///"):  # artifacts beside the local store, not in the working folder
                where = (Path(self.uri.removeprefix("sqlite:///")).parent / "artifacts").absolute().as_uri()
            exp_id = self.client.create_experiment(self.experiment, artifact_location=where)
        else:
            exp_id = exp.experiment_id
        all_tags = {"hone.kind": self.kind, **(tags or {})}
        if self.parent:
            all_tags["mlflow.parentRunId"] = self.parent
        self.run_id = self.client.create_run(exp_id, run_name=self.name, tags=all_tags).info.run_id
        logger.info("tracking to MLflow %s: experiment %r, run %s", _shown(self.uri), self.experiment, self.run_id)
        if params:
            self._log_params(params)
        return self.run_id

    def _guard(self, what: str, fn: Any, *args: Any) -> None:
        if self.broken or self.client is None:
            return
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - tracking must never cost the training
            self.broken = True
            logger.warning("MLflow %s failed (%s); the run goes on without tracking", what,
                           str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__)

    def log_params(self, params: dict[str, Any]) -> None:
        self._guard("logging parameters", self._log_params, params)

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metrics(self, metrics: dict[str, Any], step: int = 0) -> None:
        self.log_series([(step, metrics)])

    def log_series(self, points: list[tuple[int, dict[str, Any]]]) -> None:
        """Metrics at several steps in as few requests as MLflow allows."""
        self._guard("logging metrics", self._log_series, points)

    def _log_series(self, points: list[tuple[int, dict[str, Any]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for step, metrics in points for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def log_run_folder(self, run_dir: Path, *, model: bool = True) -> None:
        """The run's files as artifacts, and the model package under ``model/``."""
        self._guard("logging artifacts", self._log_run_folder, run_dir, model)

    def _log_run_folder(self, run_dir: Path, model: bool) -> None:
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        if model and (run_dir / "model").is_dir():
            self.client.log_artifacts(self.run_id, str(run_dir / "model"), "model")

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is not None and self.client is not None:
            self._guard("ending the run", self.client.set_terminated, self.run_id, status)

    def callback(self, every: int = 10) -> Callback:
        return _LogToMlflow(self, every)


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """``test.macro_f1``-style keys for the numbers of ``metrics.json`` (splits, network, baseline)."""
    out = {}
    for part in ("validation", "test", "network", "baseline"):
        for k, v in (metrics.get(part) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{part}.{k}"] = v
    for k, v in (metrics.get("training") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"training.{k}"] = v
    return out


class _LogToMlflow(Callback):
    """Per-step training loss and throughput (buffered, sent at each evaluation) and the network's
    validation metrics at each evaluation (``val_*``), by optimiser step."""

    def __init__(self, tracker: Tracker, every: int) -> None:
        self.tracker, self.every = tracker, every
        self.buffer: list[tuple[int, dict[str, Any]]] = []

    def on_batch_end(self, state: Any, *, rows: int, loss: float | None) -> None:
        if loss is not None and state.step % self.every == 0:
            self.buffer.append((state.step, {"train_loss": loss, "train_rows_per_second": state.rows_per_second}))

    def on_evaluate(self, state: Any, *, metrics: dict[str, Any], is_best: bool) -> None:
        # val_*: the network during training; the final validation.* and test.* are the chosen model's
        self.buffer.append((state.step, {**{f"val_{k}": v for k, v in metrics.items()}, "epoch": state.epoch + 1}))
        self._flush()

    def on_fit_end(self, state: Any) -> None:
        self._flush()

    def _flush(self) -> None:
        self.tracker.log_series(self.buffer)
        self.buffer = []


def _shown(uri: str) -> str:
    """The URI without credentials."""
    import re

    return re.sub(r"//[^/@]+@", "//***@", uri)
