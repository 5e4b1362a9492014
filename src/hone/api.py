"""The workflow functions behind both the CLI and the Python API: fit, predict, evaluate."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hone._io import atomic_path, check_output, write_json, write_text
from hone._logging import get_logger
from hone.config import FLAGS, RunConfig, build_config
from hone.errors import ConfigError, did_you_mean

logger = get_logger(__name__)

# Short keyword names accepted by hone.fit(...) and mapped to dotted config fields (the CLI's flags).
SHORTCUTS = FLAGS


def make_config(source: Any = None, *, target: str | None = None, config: Any = None,
                overrides: dict[str, Any] | None = None) -> RunConfig:
    """Build and validate the run config from a YAML path/dict/RunConfig plus keyword overrides."""
    dotted: dict[str, Any] = {}
    for k, v in (overrides or {}).items():
        if "." not in k and k not in SHORTCUTS:
            raise ConfigError(f"unknown setting {k!r}.{did_you_mean(k, SHORTCUTS)} "
                              "Use a dotted config field (e.g. 'train.weight_decay') for the others")
        dotted[SHORTCUTS.get(k, k)] = v
    if isinstance(source, (str, os.PathLike)):
        dotted["data.source"] = str(source)
    if target is not None:
        dotted["data.target"] = target
    cfg = build_config(config, dotted)
    if source is None and cfg.data.source is None:
        raise ConfigError("no data source: pass a file, a directory, a glob or sql:SELECT ... (or set data.source)")
    if cfg.data.target is None:
        raise ConfigError("no target column: pass --target COLUMN (or set data.target)")
    return cfg


def _run_name(cfg: RunConfig, source: Any) -> str:
    """``name``, or the source file's stem (``run`` for queries and in-memory tables)."""
    return cfg.name or (Path(str(source)).stem.split("*")[0].strip(".") if isinstance(source, (str, os.PathLike))
                        and not str(source).startswith("sql:") else "run") or "run"


def _run_dir(cfg: RunConfig, source: Any, output: str | Path | None, overwrite: bool) -> Path:
    if output is not None:
        path = check_output(output, folder=True, inputs=(source,))
        interrupted = (path / "checkpoints" / "run.json").is_file() and not (path / "metrics.json").is_file()
        if interrupted and not overwrite:
            raise ConfigError(f"{str(path)!r} holds an interrupted run: continue it with hone fit --resume {path}, "
                              "or pass --overwrite to start it over")
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise ConfigError(f"run directory {str(path)!r} already exists; pass --overwrite to replace it "
                              "or choose another --output")
        if path.exists() and overwrite and not (path / "config.resolved.yaml").exists() and not interrupted \
                and any(path.iterdir()):
            raise ConfigError(f"{str(path)!r} exists and is not a hone run directory; refusing to replace it")
        return path
    name = _run_name(cfg, source)
    base = Path("runs") / name
    path, i = base, 2
    while path.exists():
        path, i = base.with_name(f"{name}-{i}"), i + 1
    return check_output(path, folder=True, inputs=(source,))


def fit(source: Any = None, *, target: str | None = None, config: Any = None, output: str | Path | None = None,
        overwrite: bool = False, callbacks: list[Any] | None = None, resume: str | Path | None = None,
        track_parent: str | None = None, prepared: Any = None, **overrides: Any) -> Any:
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
        **overrides: short names (``epochs=3``, ``lr=1e-4``, ``text=["review"]``...) or dotted fields.

    Returns:
        The fitted :class:`hone.Model`; ``model.run_dir`` is where it was saved.

    Example:
        >>> model = hone.fit("reviews.csv", target="sentiment", epochs=2)   # doctest: +SKIP
    """
    import sys
    import time

    from hone._fit import fit_in
    from hone._provenance import environment
    from hone.train.checkpoint import latest_checkpoint

    started = time.time()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under torchrun or Ray Train
    # a Ray Train worker runs the fit itself, even with engine.kind ray in its config (the run's own)
    dispatch = not distributed and os.environ.get("HONE_RAY_WORKER") != "1"
    if distributed and int(os.environ.get("RANK", "0")) != 0:
        from hone._fit import fit_worker  # the main process (rank 0) writes the run

        state = None
        if resume is not None:  # every process continues from the main one's checkpoint
            rec = _resume_record(Path(resume))
            cfg = build_config(rec["config"])
            source = source if source is not None else rec.get("source")
            state = latest_checkpoint(Path(resume) / "checkpoints")
        else:
            cfg = make_config(source, target=target, config=config, overrides=overrides)
        fit_worker(cfg, source if source is not None else cfg.data.source, resume_state=state, prepared=prepared)
        return None
    resumed = None
    if resume is not None:
        if target is not None or config is not None or overrides or output is not None:
            raise ConfigError("--resume continues a run with the config it started with; pass no other settings "
                              "(start a new run to change them)")
        run_dir, resumed = Path(resume), _resume_record(Path(resume))
        cfg = build_config(resumed["config"])
        src = source if source is not None else resumed.get("source")
        if src is None:
            raise ConfigError(f"the run in {str(run_dir)!r} read a DataFrame or Arrow table: pass the same data "
                              "again, hone.fit(data, resume=...)")
        if cfg.engine.kind == "ray" and dispatch:  # continue on Ray Train, as it started
            from hone.distributed.ray_fit import fit_on_ray

            model = load(fit_on_ray(cfg, src, run_dir, overwrite=False, resume=True) / "model")
            model.run_dir = run_dir
            return model
        state = latest_checkpoint(run_dir / "checkpoints")
        if state is None:
            logger.warning("no complete checkpoint in %s: the run starts over from step 0", run_dir / "checkpoints")
        resumed["state"] = state
    else:
        cfg = make_config(source, target=target, config=config, overrides=overrides)
        src = source if source is not None else cfg.data.source
        run_dir = _run_dir(cfg, src, output, overwrite)
        if cfg.engine.kind == "ray" and dispatch:
            from hone.distributed.ray_fit import fit_on_ray

            model = load(fit_on_ray(cfg, src, run_dir, overwrite) / "model")
            model.run_dir = run_dir
            return model
    record = {"config": cfg.model_dump(mode="json", exclude_unset=True),
              "source": str(src) if isinstance(src, (str, os.PathLike)) else None,
              "command": sys.argv, "started": started}
    checkpoints = run_dir / "checkpoints"
    existed = checkpoints.exists()
    tracker = None
    from hone.tracking import Tracker, final_metrics, wanted

    if wanted(cfg):
        tracker = Tracker(cfg, name=run_dir.name, parent=track_parent,
                          run_id=resumed.get("mlflow_run_id") if resumed else None)
    _seed_everything(cfg.train.seed)
    try:
        with atomic_path(run_dir) as stage:
            stage.mkdir(parents=True)
            try:
                model, files = fit_in(cfg, src, stage, callbacks or (), checkpoints=checkpoints, record=record,
                                      resume=resumed, tracker=tracker, prepared=prepared)
            finally:
                shutil.rmtree(stage / ".work", ignore_errors=True)
            files["environment.json"] = environment(started)
            for name, content in files.items():
                (write_text if isinstance(content, str) else write_json)(stage / name, content)
            from hone.evaluate.report import write_report

            write_report(stage, run_dir.name)
            if cfg.train.keep_checkpoints and checkpoints.is_dir():
                shutil.move(str(checkpoints), str(stage / "checkpoints"))
    except BaseException as err:
        from hone.errors import UserError

        if isinstance(err, UserError) and resumed is None and not existed:
            # bad input or settings fail the same way again: nothing to resume, nothing left behind
            shutil.rmtree(checkpoints, ignore_errors=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        elif latest_checkpoint(checkpoints) is not None:
            logger.error("the run stopped; continue it from its last checkpoint with: hone fit --resume %s", run_dir)
        if tracker is not None:
            tracker.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    if tracker is not None and tracker.run_id is not None:
        tracker.log_metrics(final_metrics(files["metrics.json"]), step=model.meta["training"]["steps"])
        tracker.log_run_folder(run_dir)
        tracker.end()
    model.run_dir = run_dir
    logger.info("saved run to %s (model in %s)", run_dir, run_dir / "model")
    return model


def _resume_record(run_dir: Path) -> dict[str, Any]:
    """What a killed run wrote for its resume (``checkpoints/run.json``), with clear errors."""
    import json

    rec = run_dir / "checkpoints" / "run.json"
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {str(run_dir)!r} does not exist")
    if not rec.is_file():
        if (run_dir / "metrics.json").is_file():
            raise ConfigError(f"the run in {str(run_dir)!r} finished: there is nothing to resume")
        raise ConfigError(f"{str(run_dir)!r} has no checkpoints to resume from (checkpoints/run.json is missing)")
    try:
        data = json.loads(rec.read_text(encoding="utf-8"))
        data["config"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{str(rec)!r} is damaged: {err}") from err
    return data


def tune(source: Any = None, *, target: str | None = None, config: Any = None, output: str | Path | None = None,
         **overrides: Any) -> dict[str, Any]:
    """Search the training configuration with Optuna, then refit the best one (see :mod:`hone.tune.study`).

    ``output`` (default ``runs/<name>-tune``) holds ``study.db`` (the same call resumes an interrupted
    search), ``tune.json``, ``trials.csv`` and ``best/``, the refitted run. Overrides take the same
    short names as :func:`fit` plus ``trials``, ``timeout`` (seconds or "2h"), ``jobs``, ``pruner``,
    ``sampler``, ``searcher`` and ``refit``; ``engine="ray", workers=N`` runs N trials at once on Ray
    Tune (:mod:`hone.tune.ray_search`). Returns the summary of ``tune.json``."""
    from hone.tune.space import parse_duration
    from hone.tune.study import run_tune

    for short in ("trials", "timeout", "jobs", "pruner", "sampler", "searcher", "refit"):
        if short in overrides:
            value = overrides.pop(short)
            overrides[f"tune.{short}"] = parse_duration(value) if short == "timeout" and value is not None else value
    cfg = make_config(source, target=target, config=config, overrides=overrides)
    src = source if source is not None else cfg.data.source
    if output is None:
        output = Path("runs") / f"{_run_name(cfg, src)}-tune"
    check_output(output, folder=True, inputs=(src,))
    _seed_everything(cfg.train.seed)
    return run_tune(cfg, src, Path(output))


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load(path: str | Path, **kwargs: Any) -> Any:
    """Load a saved model directory (see :func:`hone.artifact.load`)."""
    from hone.artifact import load as _load

    return _load(path, **kwargs)


def predict(model_dir: str | Path, source: Any, output: str | Path, *, keep: list[str] | None = None,
            precision: str | None = None, encoding: str | None = None, runtime: str = "torch",
            workers: int | None = None, progress: bool | None = None) -> int:
    """Score ``source`` with the model in ``model_dir`` into ``output``; returns the number of rows.

    ``precision`` (fp32, bf16, auto) overrides the one the model was trained with; ``runtime``
    (torch, onnx, onnx-int8, auto) chooses the engine (onnx ones need ``hone export`` first)."""
    from hone.predict import predict_file

    check_output(output, inputs=(source, model_dir), suffix=".parquet")
    model = load(model_dir, precision=precision, runtime=runtime)
    if runtime != "torch":  # say what auto chose (or confirm the ONNX graph in use)
        logger.info("scoring with the %s runtime", model.runtime)
    return predict_file(model, source, output, keep=keep, encoding=encoding, workers=workers, progress=progress)


def explain(model_dir: str | Path, source: Any, output: str | Path, *, rows: int | None = None,
            where: str | None = None, target_class: Any = None, steps: int | str = "auto",
            keep: list[str] | None = None, precision: str | None = None, encoding: str | None = None) -> dict[str, Any]:
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


def export(model_dir: str | Path, *, format: str = "onnx", quantize: str | None = None, data: Any = None) -> dict[str, Any]:
    """Export the model to ONNX inside its folder, with the parity check (see :mod:`hone.onnx_export`)."""
    from hone.onnx_export import export_onnx

    if format != "onnx":
        raise ConfigError(f"export format must be onnx, not {format!r}")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8, not {quantize!r}")
    check_output(Path(model_dir) / "model.onnx", what="the model folder's model.onnx")
    return export_onnx(load(model_dir, precision="fp32"), Path(model_dir), quantize=quantize, data=data)


def audit(source: Any, *, target: str, output: str | Path | None = None, config: Any = None,
          **overrides: Any) -> Any:
    """Audit a labelled table: per-column problems, exact, conflicting and near duplicates, split
    leakage, label hygiene and likely label errors. Returns the
    :class:`hone.quality.audit.QualityReport`; with ``output``, writes ``output/audit.json`` and
    ``output/audit.html``. The source is never modified."""
    from hone._fit import infer_run_schema
    from hone.data.sources import connect, open_table
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
        from hone.quality.page import render_audit

        data = report.to_dict()
        write_json(Path(output) / "audit.json", data)
        write_text(Path(output) / "audit.html", render_audit(data))
    return report


def report(run_dir: str | Path) -> Path:
    """Render ``RUN_DIR/report.html`` again from the run's files; returns its path."""
    from hone.evaluate.report import write_report

    run = Path(run_dir)
    if not (run / "metrics.json").is_file():
        raise ConfigError(f"{str(run)!r} is not a hone run folder: it has no metrics.json")
    check_output(run / "report.html", what="the run folder's report.html")
    return write_report(run)


def compare(run_dirs: list[str | Path], output: str | Path | None = None) -> str:
    """Runs side by side (test metrics); the text table, and an HTML page at ``output`` if given."""
    from hone.evaluate.report import compare as _compare

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


def evaluate(model_dir: str | Path, source: Any, *, target: str | None = None,
             output: str | Path | None = None, precision: str | None = None,
             encoding: str | None = None) -> dict[str, Any]:
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


