"""The face: one function per command, behind both the CLI and the Python API.

Each checks what it was given, calls the pipeline or a use (tune, federated, distributed, serve, ONNX
export) and returns a real type. Nothing below imports this module."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hone._io import check_output, write_json, write_text
from hone._logging import get_logger
from hone._types import ConfigSource, DataSource, JSONDict, Label, Setting
from hone.errors import ConfigError
from hone.pipeline.runs import make_config, run_name, seed_everything

if TYPE_CHECKING:
    from collections.abc import Callable

    from hone.artifact import Model
    from hone.pipeline.data_stages import Prepared
    from hone.quality.audit import QualityReport
    from hone.train.callbacks import Callback

logger = get_logger(__name__)


def fit(source: DataSource | None = None, *, target: str | None = None, config: ConfigSource | None = None,
        output: str | Path | None = None, overwrite: bool = False, callbacks: list[Callback] | None = None,
        resume: str | Path | None = None, track_parent: str | None = None, prepared: Prepared | None = None,
        command: list[str] | None = None, started: float | None = None, **overrides: Setting) -> Model | None:
    """Fine-tune a model on a labelled table and write its run directory.

    Args:
        source: a path, glob, directory, ``"sql:SELECT ..."``, DataFrame or Arrow table
            (default: ``data.source`` of the config).
        target: the column to predict (default: ``data.target``).
        config: a YAML path, a dict or a :class:`RunConfig`.
        output: the run directory (default ``runs/<name>``, made unique).
        overwrite: replace an existing ``output`` run directory (only once the new run succeeded).
        callbacks: :class:`hone.train.callbacks.Callback` objects added to the training loop's own
            (tracking, pruning, checkpoints...).
        resume: the directory of a run that was killed or interrupted: it continues from its last
            checkpoint with the config it started with (``source`` is needed again only when it was
            a DataFrame or Arrow table); ``metrics.json`` records ``resumed_from``.
        track_parent: an MLflow run id to nest this run's MLflow run under (the refit of a search).
        prepared: for engines: the data stages (read, audit, split) already run by a Ray driver,
            whose split files this process reads.
        command: the command line to record in ``environment.json`` (the CLI's; default ``sys.argv``).
        started: when the command started (``time.monotonic()``), which a ``time_limit`` counts from
            (the CLI's start; default: this call's).
        **overrides: short names (``epochs=3``, ``lr=1e-4``, ``text=["review"]``...) or dotted fields.

    Returns:
        The fitted :class:`hone.Model`; ``model.run_dir`` is where it was saved. None only in a
        data-parallel process other than the main one (under torchrun), which writes nothing.

    Example:
        >>> model = hone.fit("reviews.csv", target="sentiment", epochs=2)   # doctest: +SKIP
    """
    from hone.pipeline.dispatch import FitRequest
    from hone.pipeline.dispatch import fit as run_fit

    return run_fit(FitRequest(source, target, config, output, overwrite, list(callbacks or ()), resume, track_parent,
                              prepared, command, overrides, started=started or time.monotonic()))


def auto(source: DataSource | None = None, *, target: str | None = None, config: ConfigSource | None = None,
         output: str | Path | None = None, overwrite: bool = False, command: list[str] | None = None,
         started: float | None = None, **overrides: Setting) -> Model:
    """The best model for the table in the time it is given (:mod:`hone.automl.planner`).

    Like :func:`fit` (the same run folder, model package and report), within ``time_limit`` (seconds
    or "10m"; default 10 minutes) for the whole call: a portfolio of boosted trees (LightGBM,
    XGBoost, CatBoost) and, with text, TF-IDF + linear, combined by greedy ensemble selection on
    validation, then the fine-tuned network in the time they leave, blended with them when
    validation says so. ``infer_limit`` (rows per second) keeps only models that score that fast;
    ``families`` limits the candidates. ``metrics.json`` holds the ``leaderboard``. ``started``: as
    for :func:`fit`.

    Example:
        >>> model = hone.auto("churn.csv", target="churned", time_limit="5m")   # doctest: +SKIP
    """
    from hone.automl.planner import AutoPlanner
    from hone.pipeline.dispatch import FitRequest
    from hone.pipeline.dispatch import fit as run_fit

    if overrides.get("engine", "local") != "local":
        raise ConfigError("hone auto runs on this machine (engine local); use hone fit --engine ray to scale out")
    started = started or time.monotonic()
    model = run_fit(FitRequest(source, target, config, output, overwrite, command=command, overrides=overrides,
                               planner=AutoPlanner(started), started=started))
    assert model is not None  # one process: it is the main one
    return model


def tune(source: DataSource | None = None, *, target: str | None = None, config: ConfigSource | None = None,
         output: str | Path | None = None, command: list[str] | None = None, **overrides: Setting) -> JSONDict:
    """Search the training configuration with Optuna, then refit the best one (see :mod:`hone.search.study`).

    ``output`` (default ``runs/<name>-tune``) holds ``study.db`` (the same call resumes an interrupted
    search), ``tune.json``, ``trials.csv`` and ``best/``, the refitted run. Overrides take the same
    short names as :func:`fit`, ``trials``, ``timeout`` (seconds or "2h"), ``jobs``, ``pruner``,
    ``sampler``, ``searcher`` and ``refit`` among them; ``engine="ray", workers=N`` runs N trials at once on
    Ray Tune (:mod:`hone.search.ray_search`). Returns the summary of ``tune.json``."""
    from hone.search.study import run_tune

    cfg = make_config(source, target=target, config=config, overrides=overrides)
    src = source if source is not None else cfg.data.source
    if output is None:
        output = Path("runs") / f"{run_name(cfg, src)}-tune"
    check_output(output, folder=True, inputs=(src,))
    seed_everything(cfg.train.seed)
    return run_tune(cfg, src, Path(output), command=command)


def tune_worker(folder: str | Path) -> None:
    """One of ``hone tune --jobs N``'s processes: run trials of the study in ``folder`` until it has enough."""
    from hone.search.study import run_worker

    run_worker(Path(folder))


def load(path: str | Path, *, device: str | None = None, precision: str | None = None,
         runtime: str = "torch") -> Model:
    """Load a saved model directory (see :func:`hone.artifact.load`: ``device``, ``precision``, ``runtime``)."""
    from hone.artifact import load as _load

    return _load(path, device=device, precision=precision, runtime=runtime)


def predict(model_dir: str | Path, source: DataSource, output: str | Path, *, keep: list[str] | None = None,
            precision: str | None = None, encoding: str | None = None, runtime: str = "torch",
            threads: int | None = None, progress: bool | None = None, engine: str = "local",
            workers: int | None = None, address: str | None = None) -> int:
    """Score ``source`` with the model in ``model_dir`` into ``output``; returns the number of rows.

    ``precision`` (fp32, bf16, auto) overrides the one the model was trained with; ``runtime``
    (torch, onnx, onnx-int8, auto) chooses the scoring engine (onnx ones need ``hone export`` first);
    ``threads``: threads for reading and scoring (default: all cores). ``engine="ray"`` scores on a Ray
    Dataset with ``workers`` actors (default 2; ``address``: a cluster to join) into a folder of Parquet
    parts."""
    if engine == "ray":
        from hone.distributed.ray_predict import predict_on_ray

        if not isinstance(source, (str, os.PathLike)):
            raise ConfigError("--engine ray reads files (Parquet, CSV, JSON, or a folder of them), not rows in memory")
        return predict_on_ray(model_dir, str(source), output, keep=keep, workers=workers or 2, precision=precision,
                              runtime=runtime, address=address)
    if engine != "local":
        raise ConfigError(f"--engine must be local or ray, not {engine!r}")
    from hone.scoring import predict_file

    check_output(output, inputs=(source, model_dir), suffix=".parquet")
    model = load(model_dir, precision=precision, runtime=runtime)
    if runtime != "torch":  # say what auto chose (or confirm the ONNX graph in use)
        logger.info("scoring with the %s runtime", model.runtime)
    return predict_file(model, source, output, keep=keep, encoding=encoding, workers=threads, progress=progress)


def explain(model_dir: str | Path, source: DataSource, output: str | Path, *, rows: int | None = None,
            where: str | None = None, target_class: Label | None = None, steps: int | str = "auto",
            keep: list[str] | None = None, precision: str | None = None, encoding: str | None = None) -> JSONDict:
    """Explain the predictions of the model in ``model_dir`` on ``source`` into ``output`` (``.parquet``
    or ``.html``); returns ``{"rows", "seconds", "rows_per_second", "steps"}``. See :meth:`hone.Model.explain`."""
    from hone.explain import iter_explained
    from hone.explain.output import write_explanations

    if rows is not None and rows < 1:
        raise ConfigError(f"--rows must be at least 1, got {rows}")
    steps = parse_steps(steps)
    check_output(output, inputs=(source, model_dir), suffix=".html")
    model = load(model_dir, precision=precision)
    return write_explanations(model, iter_explained(model, source, rows=rows, where=where, steps=steps,
                                                    target_class=target_class, encoding=encoding), output, keep=keep)


def parse_steps(steps: Any) -> int | str:
    """``auto`` or a whole number of integration steps (at least 2)."""
    if steps == "auto":
        return steps
    try:
        n = int(steps)
    except (TypeError, ValueError):
        n = 0
    if n < 2 or str(steps).strip() != str(n):
        raise ConfigError(f"--steps must be auto or a whole number of at least 2, not {steps!r}")
    return n


def export(model_dir: str | Path, *, format: str = "onnx", quantize: str | None = None,
           data: DataSource | None = None) -> JSONDict:
    """Export the model to ONNX inside its folder, with the parity check (see :mod:`hone.onnx.export`)."""
    from hone.onnx.export import export_onnx

    if format != "onnx":
        raise ConfigError(f"export format must be onnx, not {format!r}")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8, not {quantize!r}")
    check_output(Path(model_dir) / "model.onnx", what="the model folder's model.onnx")
    return export_onnx(load(model_dir, precision="fp32"), Path(model_dir), quantize=quantize, data=data)


def audit(source: DataSource, *, target: str, output: str | Path | None = None, config: ConfigSource | None = None,
          **overrides: Setting) -> QualityReport:
    """Audit a labelled table: per-column problems, exact, conflicting and near duplicates, split
    leakage, label hygiene and likely label errors. Returns the
    :class:`hone.quality.audit.QualityReport`; with ``output``, writes ``output/audit.json`` and
    ``output/audit.html``. The source is never modified."""
    from hone.data.sources import connect, open_table
    from hone.pipeline.data_stages import infer_run_schema
    from hone.quality.audit import audit as _audit

    cfg = make_config(source, target=target, config=config, overrides=overrides)
    d = cfg.data
    if output is not None:
        check_output(output, folder=True, inputs=(source,))
    import tempfile

    spill = tempfile.TemporaryDirectory(prefix="hone-audit-")  # DuckDB spills here past its memory limit
    con = connect(Path(spill.name), memory_limit=d.memory_limit, keep_order=True)  # rows: positions in the source
    try:
        table = open_table(source, con, encoding=d.encoding)
        schema = infer_run_schema(table, cfg)  # as a fit sees it: split, group and key columns are no features
        report = _audit(table, schema, cfg)
    finally:
        con.close()
        spill.cleanup()
    if output is not None:
        from hone._io import write_text
        from hone.pages.audit import render_audit

        data = report.to_dict()
        write_json(Path(output) / "audit.json", data)
        write_text(Path(output) / "audit.html", render_audit(data))
    return report


def report(run_dir: str | Path) -> Path:
    """Render ``RUN_DIR/report.html`` again from the run's files; returns its path."""
    from hone.pages.report import write_report

    run = Path(run_dir)
    if not (run / "metrics.json").is_file():
        raise ConfigError(f"{str(run)!r} is not a hone run folder: it has no metrics.json")
    check_output(run / "report.html", what="the run folder's report.html")
    return write_report(run)


def compare(run_dirs: list[str | Path], output: str | Path | None = None) -> str:
    """Runs side by side (test metrics); the text table, and an HTML page at ``output`` if given."""
    from hone.pages.report import compare as _compare

    runs = [Path(r) for r in run_dirs]
    for r in runs:
        if not (r / "metrics.json").is_file():
            raise ConfigError(f"{str(r)!r} is not a hone run folder: it has no metrics.json")
    if output is not None:
        check_output(output, inputs=tuple(run_dirs), suffix=".html")
    text, page = _compare(runs)
    if output is not None:
        write_text(Path(output), page)
    return text


def evaluate(model_dir: str | Path, source: DataSource, *, target: str | None = None,
             output: str | Path | None = None, precision: str | None = None,
             encoding: str | None = None) -> JSONDict:
    """Metrics of a saved model on a labelled table; optionally written to ``output`` as JSON."""
    if output is not None:
        check_output(output, inputs=(source, model_dir), suffix=".json")
    model = load(model_dir, precision=precision)
    if target is not None and target != model.target:
        raise ConfigError(f"the model predicts {model.target!r}, not {target!r}")
    metrics = model.evaluate(source, encoding=encoding)
    if output is not None:
        write_json(Path(output), metrics)
    return metrics




def format_metrics(metrics: dict[str, Any]) -> str:
    """Metrics as the console prints them (one block per split)."""
    from hone.evaluation.metrics import format_metrics as _format

    return _format(metrics)


def format_leaderboard(run_dir: str | Path | None) -> str:
    """``hone auto``'s leaderboard as the console prints it: every candidate with its validation figure,
    fit seconds, scoring speed and ensemble weight, what was skipped and why, and the stage times."""
    import json

    metrics = json.loads((Path(run_dir or ".") / "metrics.json").read_text(encoding="utf-8"))
    board = metrics.get("leaderboard") or []
    key = next((k for r in board for k in r if k.startswith("validation_") and k != "validation_loss"), None)
    lines = [f"{'candidate':<20} {'status':<8} {key or 'validation':>18} {'fit s':>7} {'rows/s':>10} {'weight':>7}"]
    for r in board:
        status = r.get("status", "fitted")
        lines.append(f"{r['name']:<20} {status:<8} {_cell(r.get(key) if key else None):>18} "
                     f"{_cell(r.get('fit_seconds')):>7} {_cell(r.get('scoring_rows_per_second')):>10} "
                     f"{_cell(r.get('weight')):>7}" + (f"  ({r['why']})" if r.get("why") else "")
                     + (f"  excluded: {r['excluded']}" if r.get("excluded") else "")
                     + (f"  ({r['repeats']} k-fold repeats)" if r.get("repeats", 1) > 1 else "")
                     + ("  (in the time the network left)" if r.get("fitted_after_the_network") else "")
                     + (f"  (strategy {r['strategy']})" if r.get("strategy") else ""))
    stages = metrics.get("stages") or {}
    if stages:
        lines.append("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
    budget = metrics.get("budget") or {}
    if budget:
        lines.append(f"time limit {budget['limit_seconds']:.0f} s" + (f"; cut: {'; '.join(budget['cuts'])}"
                                                                      if budget.get("cuts") else ""))
    return "\n".join(lines)


def _cell(v: object) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def serve(model_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_body_mb: float = 1.0, runtime: str = "auto") -> None:
    """Serve the model in ``model_dir`` over HTTP until interrupted (FastAPI: ``/predict``, ``/explain``,
    ``/health``, ``/metadata``, ``/docs``); see :mod:`hone.serve`."""
    from hone.serve import serve as _serve

    if not max_body_mb > 0:
        raise ConfigError(f"--max-body-mb must be above 0, not {max_body_mb}")
    _serve(str(model_dir), host=host, port=port, token=token, max_body_bytes=int(max_body_mb * 2**20),
           runtime=runtime)


def federate(source: DataSource | None = None, *, target: str | None = None, config: ConfigSource | None = None,
             output: str | Path | None = None, overwrite: bool = False, silos: int | None = 3, by: str | None = None,
             skew: float | None = None, resume: str | Path | None = None, log_messages: str | Path | None = None,
             client_mods: list[Callable[..., object]] | None = None, command: list[str] | None = None,
             **overrides: Setting) -> Model:
    """Train one model across silos made from ``source`` on Flower's simulation engine; returns the model
    saved in the run folder, as :func:`fit` does (see :func:`hone.federated.simulate.federate`)."""
    from hone.federated.simulate import federate as _federate

    return _federate(source, target=target, config=config, output=output, overwrite=overwrite, silos=silos, by=by,
                     skew=skew, resume=resume, log_messages=log_messages, client_mods=client_mods, command=command,
                     **overrides)


def federate_server(config: Any = None, *, listen: str = "0.0.0.0:9092", target: str | None = None,
                    output: str | Path | None = None, test: str | None = None, insecure: bool = False,
                    certificates: list[str] | tuple[str, str, str] | None = None, auth_keys: list[str] | None = None,
                    resume: bool = False, overwrite: bool = False, **overrides: Any) -> Model:
    """A real federation's server: start a Flower SuperLink on ``listen`` (HOST:PORT), run the rounds with
    the silos' clients that connect, and return the model saved in ``output``."""
    from hone.federated.deploy import run_server

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {listen!r}: expected HOST:PORT, e.g. 0.0.0.0:9092")
    cfg = make_config(target=target, config=config, overrides=overrides, needs_source=False)
    out = output or f"runs/{cfg.name or 'federated'}"
    run_dir = run_server(cfg, out, host=host, port=int(port), test=test, insecure=insecure,
                         certificates=tuple(certificates) if certificates else None,  # type: ignore[arg-type]
                         auth_keys=auth_keys, resume=resume, overwrite=overwrite)
    model = load(run_dir / "model")
    model.run_dir = run_dir
    return model


def federate_client(server: str, source: str, *, target: str, name: str | None = None, work: str | None = None,
                    insecure: bool = False, root_certificates: str | None = None, auth_key: str | None = None) -> int:
    """A real federation's client: serve this silo's table to the server at ``server`` (a Flower SuperNode)
    until the federation ends; only counts, sums and weights leave this machine. Returns the exit status."""
    from hone.federated.deploy import run_client

    return run_client(server, source, target, name=name, work=work, insecure=insecure,
                      root_certificates=root_certificates, auth_key=auth_key)
