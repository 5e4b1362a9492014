"""The body of ``hone.fit``: one call per pipeline stage, inside a staging run directory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from hone._choose import collect, choose_and_score
from hone._logging import get_logger
from hone.artifact import Model
from hone.config import ResolvedRunConfig, RunConfig, dump_yaml, resolve
from hone.data.schema import Schema, check_columns, infer_schema
from hone.data.sources import Table, connect, open_table
from hone.data.split import SplitResult, hold_out_choice, merge_validation_into_train, split_table
from hone.errors import ConfigError
from hone.evaluate.metrics import HIGHER_IS_BETTER
from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet, NetSpec, build_model
from hone.models.feeding import Feeder
from hone.models.precision import default_device, resolve_precision
from hone.models.strategies import Strategy, get_strategy
from hone.train.callbacks import Callback, EarlyStopping, ProgressBar, TimeBudget
from hone.train.loop import Loop, LoopConfig, fit_loop
from hone.train.optim import class_weights, linear_schedule, make_loss, make_optimizer
from hone.train.runtime import Runtime
from hone.train.state import TrainState

logger = get_logger("hone.fit")


@dataclass
class Prepared:
    """The data stages' result, shared by a fit and by every trial of a search."""

    schema: Schema
    split: SplitResult
    hardware: dict[str, Any]
    work: Path
    table_name: str
    quality: Any = None
    cleaning: dict[str, Any] | None = None
    base_dir: str = ""  # the source's folder: relative image paths are read from it

    def resolve(self, cfg: RunConfig) -> ResolvedRunConfig:
        counts = [self.split.class_counts.get("train", {}).get(str(c), 0) for c in self.schema.classes]
        return resolve(cfg, **self.hardware, class_counts=counts, train_rows=self.split.counts.get("train"))


def _threads(cfg: RunConfig) -> int:
    """``train.num_threads``; auto: the cores, shared between the processes torchrun or Ray started
    on this machine."""
    if cfg.train.num_threads != "auto":
        return int(cfg.train.num_threads)
    local_procs = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, (os.cpu_count() or 1) // local_procs)


def prepare(cfg: RunConfig, source: Any, work: Path, *, audit: bool | None = None, min_classes: int = 2,
            schema: Schema | None = None) -> Prepared:
    """Open the source, audit (unless ``audit`` is False) and clean it, infer the schema, split it into
    ``work/splits``. Every setting is checked here, before the first line of output (``min_classes``:
    1 for a federation's silo; ``schema``: the one a federation agreed, used instead of inferring)."""
    threads = _threads(cfg)
    torch.set_num_threads(threads)
    audit = cfg.quality.audit if audit is None else audit
    # the audit and cleaning name rows by their position in the source: that needs rows in input order
    con = connect(work, cfg.data.memory_limit, threads, keep_order=cfg.data.clean or audit)
    cleaning, quality = None, None
    try:
        table = open_table(source, con, encoding=cfg.data.encoding, work_dir=work)
        given = schema
        if given is not None:
            check_columns(table, [*given.names(), given.target], "agreed by the federation")
        schema = given or infer_run_schema(table, cfg, min_classes)
        if audit or cfg.data.clean:
            from hone.quality.audit import audit as run_audit

            quality = run_audit(table, schema, cfg)
        if cfg.data.clean:
            from hone.quality.clean import clean_table

            table, cleaning = clean_table(table, schema, label_errors=quality.extras.get("label_errors") if quality else None)
            schema = given or infer_run_schema(table, cfg, min_classes)  # label spellings merged: the classes change
            logger.info("cleaned: %d label spelling(s) merged, %d likely label error(s), %d duplicate row(s) and %d "
                        "conflicting-label row(s) dropped (cleaning.json)", len(cleaning["label_merges"]),
                        cleaning["dropped_label_errors"], cleaning["dropped_duplicates"], cleaning["dropped_conflicting"])
        hardware = {"has_text": bool(schema.names("text")), "task": schema.task, "threads": threads,
                    "precision": resolve_precision("auto", default_device()), **_image_hardware(schema, cfg, table)}
        resolve(cfg, **hardware)  # every setting is checked before the first line of output
        caps = {"train": cfg.train.max_rows, "validation": cfg.train.max_eval_rows, "test": cfg.train.max_eval_rows}
        split = split_table(table, schema, cfg.data.split, work / "splits", key=cfg.data.key, max_rows=caps)
        if cfg.data.split.choice_fraction > 0:
            hold_out_choice(con, split, cfg.data.split.choice_fraction, schema.target)
        if cfg.train.fit_on == "train+validation":
            merge_validation_into_train(con, split)
        name, base_dir = table.name, table.base_dir
    finally:
        con.close()
    return Prepared(schema, split, hardware, work, name, quality, cleaning, base_dir)


def _image_hardware(schema: Schema, cfg: RunConfig, table: Table) -> dict[str, Any]:
    """For a table with image columns: the vision backbone folder (the default converted on first
    use) and the input side ``model.image_size: auto`` stands for (the backbone's, smaller for
    small images: :func:`hone.features.image.auto_size`), for resolve."""
    if not schema.names("image"):
        return {}
    from hone.data.sql import qi
    from hone.features.image import auto_size, backbone_preprocessing, median_side, pixel_side

    folder = cfg.model.image_backbone
    if folder == "auto":
        from hone.models.vision_weights import default_image_backbone

        folder = default_image_backbone()
    if not Path(folder).is_dir():
        return {"has_image": True, "image_backbone": folder}  # resolve names the problem
    sides = []
    for c in schema.columns:
        if c.role != "image":
            continue
        if c.dtype.endswith("]"):  # pixel arrays: the side from the first value
            row = table.one(f"SELECT {qi(c.name)} FROM {table.view} WHERE {qi(c.name)} IS NOT NULL")
            sides.append(pixel_side(row[0]) if row else None)
            continue
        values = [r[0] for r in table.sql(f"SELECT {qi(c.name)} FROM {table.view} WHERE {qi(c.name)} IS NOT NULL "
                                          "LIMIT 64").fetchall()]
        sides.append(median_side(values, "path", table.base_dir))
    known = [s for s in sides if s]
    size = auto_size(backbone_preprocessing(folder)["size"], max(known) if known else None)
    return {"has_image": True, "image_backbone": folder, "image_size": size}


def adopt(prep: Prepared, cfg: RunConfig, work: Path) -> Prepared:
    """The data stages another process ran (a Ray driver, on storage this one reaches), for this
    process: its own spill folder, its threads and its device's precision (the driver may have no GPU)."""
    import dataclasses

    threads = _threads(cfg)
    torch.set_num_threads(threads)
    hardware = {**prep.hardware, "threads": threads, "precision": resolve_precision("auto", default_device())}
    return dataclasses.replace(prep, work=work, hardware=hardware)


def fit_preprocessor(prep: Prepared, rcfg: ResolvedRunConfig) -> Preprocessor:
    """Vocabularies, statistics and the tokenizer, from the training split only."""
    con = connect(prep.work, rcfg.data.memory_limit, prep.hardware["threads"])
    try:
        pre = Preprocessor.fit(prep.schema, prep.split.paths["train"], con=con, cfg=rcfg.model,
                               class_counts=prep.split.class_counts.get("train", {}))
    finally:
        con.close()
    pre.bind(prep.base_dir)
    pre.check({s: p for s, p in prep.split.paths.items() if prep.split.counts.get(s)})
    return pre


@dataclass
class Trained:
    """A trained network (best validation weights restored) and how its training went."""

    model: Model
    state: TrainState
    weights: np.ndarray | None  # the class weights of the loss, if any
    resumed_from: int
    embedding_seconds: float
    runtime: Runtime


def build_network(rcfg: ResolvedRunConfig, pre: Preprocessor, runtime: Runtime, *, feeder: bool = True
                  ) -> tuple[Model, Strategy, str, Feeder | None]:
    """The network for ``rcfg`` and ``pre`` (pretrained backbones, seeded head) on the runtime's device,
    prepared by its fine-tuning strategy (frozen, top-k, LoRA...), as an unsaved :class:`Model`; with the
    strategy, its description and (``feeder``) the batches' feeder."""
    torch.manual_seed(rcfg.train.seed)
    task, classes = pre.schema.task, pre.schema.classes
    spec = NetSpec(pre.encoder_specs(), 1 if task == "regression" else len(classes), rcfg.model.hidden_size,
                   rcfg.model.dropout)
    folders = {"text": rcfg.model.backbone, "image": rcfg.model.image_backbone}
    assets = {m: Path(folders[m]) for m in ("text", "image") if m in pre.modalities}
    net = build_model(spec, assets, pretrained=True).to(runtime.device)
    if net.text is not None and rcfg.model.backbone_dropout is not None:
        net.text.set_dropout(rcfg.model.backbone_dropout)
    strategy = get_strategy(rcfg.model.strategy)
    described = strategy.prepare(net, rcfg.model)
    if rcfg.train.compile and net.text is not None:
        net.text.backbone.compile(dynamic=True)  # in place: the weights keep their names
    fed = None
    if feeder:
        fed = strategy.feeder(net, pre, device=runtime.device, precision=runtime.precision,
                              cache_dir=Path(rcfg.model.embedding_cache), backbones=assets)
        fed.prefetch = rcfg.train.prefetch
    return Model(net, pre, {}, assets=assets, precision=runtime.precision), strategy, described, fed


def train_network(prep: Prepared, rcfg: ResolvedRunConfig, pre: Preprocessor, callbacks: Iterable[Callback] = (),
                  resume_state: str | Path | None = None, log: bool = True) -> Trained:
    """Build the network for ``rcfg``, train it on the training split with early stopping on
    validation (``resume_state``: continue from a saved loop state) and finalise its strategy."""
    split = prep.split
    runtime = Runtime.from_env(rcfg.train.precision)  # data-parallel under torchrun or Ray Train
    model, strategy, described, feeder = build_network(rcfg, pre, runtime)
    net, assets = model.net, model.assets
    chosen = f"{described}; preset {rcfg.preset}" if assets else "no pretrained backbone"
    if log:
        logger.info("training %s on %d rows (%s): %s", _describe(net), split.counts["train"], chosen,
                    _settings(rcfg, "text" in pre.modalities, "image" in pre.modalities))
    images = pre.modalities.get("image")
    if images is not None:
        images.strict = True  # an image that does not decode while training is an error, not a missing image
    try:
        t_emb = time.perf_counter()
        feeder.prepare(split.paths)
        t_emb = time.perf_counter() - t_emb
        state, weights, resumed_from = _train(model, split, rcfg, runtime, feeder, strategy, list(callbacks),
                                              resume_state=resume_state)
    finally:
        if images is not None:
            images.strict = False
    runtime.close()  # the last collective was the training's: the rest runs on the main process only
    strategy.finalize(net)  # merge LoRA adapters, unfreeze: the saved network is a plain one
    return Trained(model, state, weights, resumed_from, t_emb, runtime)


def fit_worker(cfg: RunConfig, source: Any, resume_state: str | Path | None = None,
               prepared: Prepared | None = None) -> None:
    """A data-parallel process other than the main one: its share of the training (continued from
    ``resume_state``, the main process's checkpoint, when the run resumes) on the splits the driver
    made (``prepared``) or, under torchrun, on the same deterministic data stages run here (no
    audit); the main process writes the run."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hone-rank-") as tmp:
        prep = adopt(prepared, cfg, Path(tmp)) if prepared is not None else prepare(cfg, source, Path(tmp), audit=False)
        rcfg = prep.resolve(cfg)
        train_network(prep, rcfg, fit_preprocessor(prep, rcfg), resume_state=resume_state, log=False)


def fit_in(cfg: RunConfig, source: Any, stage: Path, callbacks: Iterable[Callback] = (), *,
           checkpoints: Path | None = None, record: dict[str, Any] | None = None,
           resume: dict[str, Any] | None = None, tracker: Any = None,
           prepared: Prepared | None = None) -> tuple[Model, dict[str, Any]]:
    """Run every stage; returns the model (already saved to ``stage/model``) and the run files to write.

    ``checkpoints``: the folder the training state is saved to (with ``record``, what a resume needs);
    ``resume``: that folder's ``run.json`` plus ``state`` (the saved state's folder, or None to start
    over) when continuing a killed run; ``tracker``: a :class:`hone.tracking.Tracker` started once the
    data stages passed (a resumed run continues its MLflow run); ``prepared``: the data stages, run
    already by a Ray driver."""
    t_start = time.perf_counter()
    work = stage / ".work"
    work.mkdir()
    prep = adopt(prepared, cfg, work) if prepared is not None else prepare(cfg, source, work)
    schema, split, quality, cleaning = prep.schema, prep.split, prep.quality, prep.cleaning
    rcfg = prep.resolve(cfg)
    tr = rcfg.train
    if resume is not None:
        _check_same_data(resume.get("fingerprint", {}), split.fingerprint)
    logger.info("schema of %s (%s):\n%s", prep.table_name, schema.task, schema)
    if quality is not None:
        logger.info("%s", quality)
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
    _log_split(split)
    pre = fit_preprocessor(prep, rcfg)
    extra = list(callbacks)
    record = dict(record or {})
    if tracker is not None:
        from hone.tracking import flatten

        tags = {"hone.target": str(schema.target), "hone.task": schema.task, "hone.data_hash": split.fingerprint.get("content_hash", "")}
        if quality is not None:
            tags["hone.audit"] = str(quality).splitlines()[0][:5000]
        record["mlflow_run_id"] = tracker.start(flatten(rcfg.model_dump(mode="json")), tags=tags)
        extra.append(tracker.callback())
    if checkpoints is not None and tr.checkpoint:
        from hone.train.checkpoint import Checkpointer

        minutes = tr.checkpoint_every_minutes
        extra.append(Checkpointer(checkpoints, every_steps=tr.checkpoint_every_steps,
                                  every_seconds=minutes * 60 if minutes else None,
                                  record={**record, "fingerprint": split.fingerprint}))
    trained = train_network(prep, rcfg, pre, extra, resume_state=resume.get("state") if resume else None)
    model, state, weights, runtime = trained.model, trained.state, trained.weights, trained.runtime
    threads, t_emb, resumed_from = prep.hardware["threads"], trained.embedding_seconds, trained.resumed_from
    weighted = weights is not None
    # Baseline, model choice, calibration and decision rule on validation; test scored once. The
    # numbers come from the plain network, exactly as a loaded model computes them.
    paths = {s: p for s, p in split.paths.items() if split.counts.get(s)}
    if "choice" in paths:  # the rows held out from early stopping and the search decide
        paths["validation"] = paths.pop("choice")
    report = choose_and_score(model, paths, rcfg, weights)
    rcfg = rcfg.model_copy(update={"evaluate": rcfg.evaluate.model_copy(update={"model": model.decision.model})})
    metrics = {s: report.pop(s) for s in ("validation", "test") if s in report}
    world = runtime.world_size  # rows_seen counts this process's rows: the processes train equal shares
    training = {"train_samples_per_second": round(state.rows_per_second * world, 2), "world_size": world, "train_seconds": round(state.train_seconds, 2),
                "eval_seconds": round(state.eval_seconds, 2), "total_seconds": round(time.perf_counter() - t_start, 2),
                "peak_memory_mb": round(_peak_mb(), 1), "epochs_run": state.epoch + 1, "steps": state.step,
                "best_epoch": state.best_epoch, "best_step": state.best_step, "stop_reason": state.stop_reason or "completed",
                "embedding_seconds": round(t_emb, 2), "strategy": rcfg.model.strategy, "preset": rcfg.preset,
                "precision": tr.precision, "threads": threads, "device": str(runtime.device), "class_weights": weighted,
                "rows": split.counts, "skipped_rows": split.skipped, "coerced_cells": schema.coerced,
                "nonfinite_cells": schema.nonfinite,
                # the step a resumed run continued from (0: its checkpoint was lost, it started over)
                "resumed_from": resumed_from if resume is not None else None}
    model.meta = {"task": schema.task, "target": schema.target, "classes": schema.classes,
                  "config": rcfg.model_dump(mode="json"), "training": training,
                  # no figures: they quote test rows, which stay in the run folder, not in the model package
                  "metrics": {**metrics, **{k: v for k, v in report.items() if k != "figures"}},
                  "history": state.history, "data_fingerprint": split.fingerprint}
    model.save(stage / "model")
    logger.info("%s", _summary(training))
    files = {"config.resolved.yaml": dump_yaml(rcfg), "metrics.json": {**metrics, **report, "training": training},
             "schema.json": schema.to_dict(), "history.json": state.history,
             "data.fingerprint.json": {**split.fingerprint, "rows_per_split": split.counts,
                                       "schema": {c.name: {"role": c.role, "type": c.dtype} for c in schema.columns}
                                       | {schema.target: {"role": "target", "classes": schema.classes}},
                                       "class_counts": split.class_counts, "skipped": split.skipped}}
    if rcfg.evaluate.explain and "validation" in paths:
        from hone.explain.summary import global_explanation

        ev = rcfg.evaluate
        files["explain.json"] = global_explanation(model, paths["validation"], rows=ev.explain_rows,
                                                   examples=ev.explain_examples, level=ev.level, seed=tr.seed)
    if cleaning is not None:
        files["cleaning.json"] = cleaning
    if quality is not None:
        files["quality.json"] = quality.to_dict()
    return model, files


def infer_run_schema(table: Table, cfg: RunConfig, min_classes: int = 2) -> Schema:
    """The schema of a run's table: the split column, group and key are never features."""
    d = cfg.data
    exclude = {}
    for col, what in ((d.split.column, "split column"), (d.split.group, "group column"), (d.key, "row key")):
        if col:
            check_columns(table, [col], what)
            exclude[col] = what
    overrides = {"text": d.text, "image": d.image, "categorical": d.categorical, "numeric": d.numeric, "ignore": d.ignore}
    return infer_schema(table, target=str(d.target), task=d.task, overrides=overrides, exclude=exclude,
                        sample_rows=d.sample_rows, seed=d.split.seed, min_classes=min_classes)


def _check_same_data(saved: dict[str, Any], now: dict[str, Any]) -> None:
    if saved and (saved.get("rows"), saved.get("content_hash")) != (now.get("rows"), now.get("content_hash")):
        raise ConfigError(f"the data changed since the run started ({saved.get('rows')} rows, content hash "
                          f"{saved.get('content_hash')}; now {now.get('rows')} rows, {now.get('content_hash')}): "
                          "a resume must read the same rows; start a new run instead")


def _train(model: Model, split: SplitResult, cfg: ResolvedRunConfig, runtime: Runtime, feeder: Feeder,
           strategy: Strategy, extra: list[Callback], resume_state: str | Path | None = None) -> tuple[Any, np.ndarray | None, int]:
    tr, pre, net = cfg.train, model.pre, model.net
    n_batches = -(-split.counts["train"] // tr.batch_size)
    steps_per_epoch = max(1, -(-n_batches // tr.grad_accum_steps))
    weights, weighted = None, False
    if pre.schema.task != "regression":
        counts = [pre.class_counts.get(str(c), 0) for c in pre.schema.classes]
        weights, weighted = class_weights(counts, tr.class_weights)

    def batches(epoch: int) -> Iterator[Any]:
        for inputs, t in feeder.train_batches(split.paths["train"], tr.batch_size, seed=tr.seed, epoch=epoch,
                                              rank=runtime.rank, world_size=runtime.world_size):
            yield inputs, torch.from_numpy(pre.targets(t)).to(runtime.device), t.num_rows

    def evaluate() -> dict[str, float]:
        m = score(model, feeder.outputs(split.paths["validation"]))
        return {k: v for k, v in m.items() if isinstance(v, float)}

    groups = strategy.param_groups(net, lr=tr.lr, head_lr=tr.head_lr if net.backbones() else tr.lr,
                                   weight_decay=tr.weight_decay)
    opt = make_optimizer(groups)
    sched = linear_schedule(opt, tr.epochs * steps_per_epoch, tr.warmup_ratio)
    on_validation = tr.fit_on == "train+validation"  # no early stopping on rows it trains on
    # one process logs, draws and saves; every process stops early on the same (identical) metrics
    callbacks: list[Callback] = [_EpochLog(tr.metric), ProgressBar(None if tr.show_progress else False)] \
        if runtime.is_main else []
    if not on_validation:
        callbacks.append(EarlyStopping(tr.patience))
    if tr.time_budget:
        callbacks.append(TimeBudget(tr.time_budget))
    loop = LoopConfig(epochs=tr.epochs, steps_per_epoch=steps_per_epoch, metric=tr.metric,
                      higher_is_better=HIGHER_IS_BETTER[tr.metric], grad_clip=tr.grad_clip,
                      grad_accum_steps=tr.grad_accum_steps, eval_every_steps=tr.eval_every_steps,
                      restore_best=not on_validation)
    loss_fn = make_loss(pre.schema.task, weights.to(runtime.device) if weights is not None else None)
    state, best, resumed_from = None, None, 0
    if resume_state is not None:
        from hone.train.checkpoint import load_loop_state

        holder = Loop(net, opt, sched, loss_fn, runtime, loop, {})
        state = load_loop_state(resume_state, holder)
        best, resumed_from = holder.best, state.step
        logger.info("resuming at step %d (epoch %d, batch %d of it) from %s", state.step, state.epoch + 1,
                    state.batch_in_epoch, resume_state)
    state = fit_loop(net, batches=batches, evaluate=evaluate, loss_fn=loss_fn, optimizer=opt, scheduler=sched,
                     cfg=loop, runtime=runtime, callbacks=[*callbacks, *(extra if runtime.is_main else [])],
                     state=state, best=best)
    return state, weights.numpy() if weights is not None else None, resumed_from


def score(model: Model, outputs: Iterable[tuple[pa.Table, np.ndarray]]) -> dict[str, Any]:
    """Metrics over ``(batch, outputs)`` pairs of a labelled split."""
    return model.score(*collect(model, outputs, target_scale=False))


class _EpochLog(Callback):
    def __init__(self, metric: str) -> None:
        self.metric = metric

    def on_evaluate(self, state: Any, *, metrics: dict[str, Any], is_best: bool) -> None:
        logger.info("epoch %d step %d: train loss %.4f, validation %s %.4f%s (%.0f rows/s)", state.epoch + 1,
                    state.step, state.last_loss, self.metric, metrics[self.metric], " *" if is_best else "",
                    state.rows_per_second)


def _describe(net: HoneNet) -> str:
    n = sum(p.numel() for p in net.parameters())
    parts = []
    for name, enc in net.encoders.items():
        spec = net.spec.encoders[name]
        if name == "text":
            parts.append(f"{len(spec['columns'])} text column(s) through a {enc.hidden}-d backbone")
        elif name == "numeric":
            parts.append(f"{spec['width'] // 2} numeric feature(s)")
        elif name == "categorical":
            parts.append(f"{len(spec['cardinalities'])} categorical column(s)")
        elif name == "image":
            parts.append(f"{len(spec['columns'])} image column(s) at {spec['size']} px through a "
                         f"{enc.hidden}-d {type(_base(enc.backbone)).__name__}")
        else:
            parts.append(f"a {name} encoder")
    size = f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"
    return f"a {size}-parameter network with " + ", ".join(parts)


def _base(backbone: Any) -> Any:
    """The backbone under a PEFT wrapper."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


def _settings(cfg: ResolvedRunConfig, has_text: bool, has_image: bool = False) -> str:
    t, m = cfg.train, cfg.model
    text = f"strategy={m.strategy} max_length={m.max_length} head_lr={t.head_lr} " if has_text else ""
    if has_image:
        text = (f"{text}{'' if has_text else f'strategy={m.strategy} head_lr={t.head_lr} '}image_size={m.image_size} "
                f"augment={'on' if m.augment.enabled else 'off'} prefetch={t.prefetch} ")
    return (f"{text}epochs={t.epochs} batch_size={t.batch_size} lr={t.lr} precision={t.precision} "
            f"class_weights={t.class_weights} metric={t.metric} patience={t.patience} seed={t.seed}")


def _log_split(split: SplitResult) -> None:
    logger.info("split: %s rows (%s)", " / ".join(str(split.counts[s]) for s in split.counts), "/".join(split.counts))
    for what, n in split.skipped.items():
        if n:
            logger.info("skipped %d rows: %s", n, what.replace("_", " "))


def _summary(training: dict[str, Any]) -> str:
    return (f"trained {training['epochs_run']} epoch(s), {training['steps']} steps in {training['train_seconds']:.1f} s "
            f"({training['train_samples_per_second']:.0f} rows/s, {training['precision']}, {training['threads']} threads); "
            f"best epoch {training['best_epoch']}; stopped: {training['stop_reason']}; "
            f"peak memory {training['peak_memory_mb']:.0f} MB")


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB
