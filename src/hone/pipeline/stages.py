"""One run, stage by stage, inside a staging run directory: data stages, training, the after-training
stage, and the files the run folder holds."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hone._logging import get_logger
from hone.artifact import Model
from hone.config import ResolvedRunConfig, RunConfig, build_config, dump_yaml
from hone.data.split import SplitResult
from hone.errors import ConfigError
from hone.pipeline.after import choose_and_score
from hone.pipeline.budget import Planner
from hone.pipeline.data_stages import Prepared, adopt, fit_preprocessor, prepare
from hone.pipeline.network import Trained, train_network
from hone.train.callbacks import Callback

logger = get_logger("hone.fit")


def fit_in(cfg: RunConfig, source: Any, stage: Path, callbacks: Iterable[Callback] = (), *,
           checkpoints: Path | None = None, record: dict[str, Any] | None = None,
           resume: dict[str, Any] | None = None, tracker: Any = None,
           prepared: Prepared | None = None, planner: Planner | None = None) -> tuple[Model, dict[str, Any]]:
    """Run every stage; returns the model (already saved to ``stage/model``) and the run files to write.

    ``checkpoints``: the folder the training state is saved to (with ``record``, what a resume needs);
    ``resume``: that folder's ``run.json`` plus ``state`` (the saved state's folder, or None to start
    over) when continuing a killed run; ``tracker``: a :class:`hone.tracking.Tracker` started once the
    data stages passed (a resumed run continues its MLflow run); ``prepared``: the data stages, run
    already by a Ray driver; ``planner``: the stage order and budgets (:mod:`hone.pipeline.budget`;
    default: no time limit)."""
    t_start = time.perf_counter()
    planner = planner or Planner()
    clock = planner.clock
    work = stage / ".work"
    work.mkdir()
    with clock.stage("data"):
        prep = adopt(prepared, cfg, work) if prepared is not None else prepare(cfg, source, work)
    rcfg = prep.resolve(cfg)
    if resume is not None:
        _check_same_data(resume.get("fingerprint", {}), prep.split.fingerprint)
    _log_data(prep)
    with clock.stage("preprocess"):
        pre = fit_preprocessor(prep, rcfg)
    paths = {s: p for s, p in prep.split.paths.items() if prep.split.counts.get(s)}
    if "choice" in paths:  # the rows held out from early stopping and the search decide
        paths["validation"] = paths.pop("choice")
    prefit = None
    if planner.prefits:  # a time limit: the shallow models first, the network in the time they leave
        free = _strategy_is_free(cfg, pre, prepared, resume)  # hone picks the fine-tuning strategy the time affords
        if free:
            with clock.stage("train"):
                planner.pilot(rcfg, pre, paths)  # what the network costs, before the shallow stage shares the time
        with clock.stage("baseline"):
            prefit = planner.shallow(pre, paths, rcfg)
        if free:
            with clock.stage("train"):
                chosen = planner.strategy(rcfg, pre, paths)
            if chosen is not None and chosen != rcfg.model.strategy:
                rcfg = prep.resolve(build_config(cfg, {"model.strategy": chosen}))
                if record is not None and "config" in record:  # a resume continues with the strategy chosen
                    asked = record["config"]
                    record = {**record, "config": {**asked, "model": {**asked.get("model", {}), "strategy": chosen}}}
        rcfg = planner.network(rcfg)
    extra = [*callbacks, *_run_callbacks(prep, rcfg, tracker, checkpoints, dict(record or {}))]
    with clock.stage("train"):
        trained = train_network(prep, rcfg, pre, extra, resume_state=resume.get("state") if resume else None)
    model = trained.model
    if planner.prefits:  # the time the network did not use (it stopped early) goes back to the shallow models
        with clock.stage("baseline"):
            prefit = planner.after_network(prefit)
    # Baseline, model choice, calibration and decision rule on validation; test scored once. The
    # numbers come from the plain network, exactly as a loaded model computes them.
    with clock.stage("choice"):
        report = choose_and_score(model, paths, rcfg, trained.weights, planner=planner, prefit=prefit)
    rcfg = rcfg.model_copy(update={"evaluate": rcfg.evaluate.model_copy(update={"model": model.decision.model})})
    metrics: dict[str, Any] = {s: report.pop(s) for s in ("validation", "test") if s in report}
    training = _training_record(prep, rcfg, trained, time.perf_counter() - t_start, resumed=resume is not None)
    schema, split = prep.schema, prep.split
    model.meta = {"task": schema.task, "target": schema.target, "classes": schema.classes,
                  "config": rcfg.model_dump(mode="json"), "training": training,
                  # no figures: they quote test rows, which stay in the run folder, not in the model package
                  "metrics": {**metrics, **{k: v for k, v in report.items() if k != "figures"}},
                  "history": trained.state.history, "data_fingerprint": split.fingerprint}
    with clock.stage("save"):
        model.save(stage / "model")
    logger.info("%s", _summary(training))
    explain_json = None
    ev = rcfg.evaluate
    sizes = planner.explanation(ev.explain_rows, ev.explain_examples) if ev.explain and "validation" in paths \
        else None
    if sizes is not None:
        from hone.explain.summary import global_explanation

        with clock.stage("explain"):
            explain_json = global_explanation(model, paths["validation"], rows=sizes[0], examples=sizes[1],
                                              level=ev.level, seed=rcfg.train.seed)
    files = _run_files(prep, rcfg, {**metrics, **report, "training": training, **planner.record()},
                       trained.state.history)
    if explain_json is not None:
        files["explain.json"] = explain_json
    return model, files


def _strategy_is_free(cfg: RunConfig, pre: Any, prepared: Prepared | None, resume: dict[str, Any] | None) -> bool:
    """Whether a time-limited run chooses the fine-tuning strategy: the user left it (and the preset) on
    auto, the network has a pretrained backbone, and the run trains in this one process from its start
    (a resumed run keeps the strategy it started with; a Ray run's workers plan on their own)."""
    import os

    return cfg.model.strategy == "auto" and cfg.preset == "auto" and bool({"text", "image"} & set(pre.modalities)) \
        and prepared is None and resume is None and int(os.environ.get("WORLD_SIZE", "1")) <= 1


def _log_data(prep: Prepared) -> None:
    """The schema, the audit's summary, the cells read as missing and the split, as the run starts."""
    schema = prep.schema
    logger.info("schema of %s (%s):\n%s", prep.table_name, schema.task, schema)
    if prep.quality is not None:
        logger.info("%s", prep.quality)
    if schema.coerced:
        logger.warning("read as missing: %s", ", ".join(f"{n} value(s) of {c!r} that are not numbers/dates"
                                                         for c, n in schema.coerced.items()))
    nonfinite = {c: n for c, n in schema.nonfinite.items() if c != schema.target}
    if nonfinite:
        logger.warning("read as missing: %s", ", ".join(f"{n} non-finite value(s) (NaN, infinity) of {c!r}"
                                                         for c, n in nonfinite.items()))
    if schema.nonfinite.get(schema.target):
        logger.warning("dropped from training: %d row(s) whose target %r is NaN or infinite",
                       schema.nonfinite[schema.target], schema.target)
    _log_split(prep.split)


def _run_callbacks(prep: Prepared, rcfg: ResolvedRunConfig, tracker: Any, checkpoints: Path | None,
                   record: dict[str, Any]) -> list[Callback]:
    """The run's own callbacks: MLflow tracking (started here, its run id kept for a resume) and the
    checkpoints a resume continues from."""
    out: list[Callback] = []
    if tracker is not None:
        from hone.tracking import flatten

        schema, split = prep.schema, prep.split
        tags = {"hone.target": str(schema.target), "hone.task": schema.task,
                "hone.data_hash": split.fingerprint.get("content_hash", "")}
        if prep.quality is not None:
            tags["hone.audit"] = str(prep.quality).splitlines()[0][:5000]
        record["mlflow_run_id"] = tracker.start(flatten(rcfg.model_dump(mode="json")), tags=tags)
        out.append(tracker.callback())
    tr = rcfg.train
    if checkpoints is not None and tr.checkpoint:
        from hone.train.checkpoint import Checkpointer

        minutes = tr.checkpoint_every_minutes
        out.append(Checkpointer(checkpoints, every_steps=tr.checkpoint_every_steps,
                                every_seconds=minutes * 60 if minutes else None,
                                record={**record, "fingerprint": prep.split.fingerprint}))
    return out


def _training_record(prep: Prepared, rcfg: ResolvedRunConfig, trained: Trained, seconds: float, *,
                     resumed: bool) -> dict[str, Any]:
    """``metrics.json``'s ``training``: how the training went, on what, with what."""
    state, placement, split, schema = trained.state, trained.placement, prep.split, prep.schema
    world = placement.world_size  # rows_seen counts this process's rows: the processes train equal shares
    return {"train_samples_per_second": round(state.rows_per_second * world, 2), "world_size": world,
            "train_seconds": round(state.train_seconds, 2), "eval_seconds": round(state.eval_seconds, 2),
            "total_seconds": round(seconds, 2), "peak_memory_mb": round(_peak_mb(), 1),
            "epochs_run": state.epoch + 1, "steps": state.step, "best_epoch": state.best_epoch,
            "best_step": state.best_step, "stop_reason": state.stop_reason or "completed",
            "embedding_seconds": round(trained.embedding_seconds, 2), "strategy": rcfg.model.strategy,
            "preset": rcfg.preset, "precision": rcfg.train.precision, "threads": prep.hardware["threads"],
            "device": str(placement.device), "class_weights": trained.weights is not None, "rows": split.counts,
            "skipped_rows": split.skipped, "coerced_cells": schema.coerced, "nonfinite_cells": schema.nonfinite,
            # the step a resumed run continued from (0: its checkpoint was lost, it started over)
            "resumed_from": trained.resumed_from if resumed else None,
            "init_from": trained.model.meta.get("init_from")}


def _run_files(prep: Prepared, rcfg: ResolvedRunConfig, metrics: dict[str, Any],
               history: list[dict[str, Any]]) -> dict[str, Any]:
    """The run folder's files besides the model (``name -> text or JSON``)."""
    schema, split = prep.schema, prep.split
    roles = {c.name: {"role": c.role, "type": c.dtype} for c in schema.columns}
    files: dict[str, Any] = {
        "config.resolved.yaml": dump_yaml(rcfg), "metrics.json": metrics, "schema.json": schema.to_dict(),
        "history.json": history,
        "data.fingerprint.json": {**split.fingerprint, "rows_per_split": split.counts,
                                  "schema": roles | {schema.target: {"role": "target", "classes": schema.classes}},
                                  "class_counts": split.class_counts, "skipped": split.skipped}}
    if prep.cleaning is not None:
        files["cleaning.json"] = prep.cleaning
    if prep.quality is not None:
        files["quality.json"] = prep.quality.to_dict()
    return files


def _check_same_data(saved: dict[str, Any], now: dict[str, Any]) -> None:
    if saved and (saved.get("rows"), saved.get("content_hash")) != (now.get("rows"), now.get("content_hash")):
        raise ConfigError(f"the data changed since the run started ({saved.get('rows')} rows, content hash "
                          f"{saved.get('content_hash')}; now {now.get('rows')} rows, {now.get('content_hash')}): "
                          "a resume must read the same rows; start a new run instead")


def _log_split(split: SplitResult) -> None:
    logger.info("split: %s rows (%s)", " / ".join(str(split.counts[s]) for s in split.counts), "/".join(split.counts))
    for what, n in split.skipped.items():
        if n:
            logger.info("skipped %d rows: %s", n, what.replace("_", " "))


def _summary(training: dict[str, Any]) -> str:
    return (
        f"trained {training['epochs_run']} epoch(s), {training['steps']} steps in {training['train_seconds']:.1f} s "
        f"({training['train_samples_per_second']:.0f} rows/s, {training['precision']}, {training['threads']} threads); "
        f"best epoch {training['best_epoch']}; stopped: {training['stop_reason']}; "
        f"peak memory {training['peak_memory_mb']:.0f} MB"
    )


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
