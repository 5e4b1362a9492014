"""The body of ``hone.fit``: one call per pipeline stage, inside a staging run directory."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hone._logging import get_logger
from hone.artifact import Model
from hone.config import RunConfig, dump_yaml, resolve
from hone.data.batches import ROW_INDEX, iter_batches, shuffled_batches
from hone.data.schema import Schema, check_columns, infer_schema
from hone.data.sources import Table, connect, open_table
from hone.data.split import SplitResult, split_table
from hone.evaluate.metrics import HIGHER_IS_BETTER
from hone.features.pipeline import Preprocessor
from hone.features.tabular import TabularPreprocessor
from hone.features.text import TextPreprocessor
from hone.models.build import HoneNet, NetSpec, build_model
from hone.models.embedding_cache import backbone_fingerprint, cached_embeddings, default_cache_dir
from hone.models.inference import iter_outputs, to_outputs
from hone.models.precision import default_device, resolve_precision
from hone.models.strategies import apply_strategy, finalize
from hone.train.callbacks import Callback, EarlyStopping, ProgressBar, TimeBudget
from hone.train.loop import LoopConfig, fit_loop
from hone.train.optim import class_weights, linear_schedule, make_loss, make_optimizer

logger = get_logger("hone.fit")


def fit_in(cfg: RunConfig, source: Any, stage: Path) -> tuple[Model, dict[str, Any]]:
    """Run every stage; returns the model (already saved to ``stage/model``) and the run files to write."""
    t_start = time.perf_counter()
    work = stage / ".work"
    work.mkdir()
    device = default_device()
    threads = int(cfg.train.num_threads) if cfg.train.num_threads != "auto" else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    con = connect(work, cfg.data.memory_limit, threads)
    try:
        table = open_table(source, con)
        schema = _infer(table, cfg)
        logger.info("schema of %s (%s):\n%s", table.name, schema.task, schema)
        cfg = resolve(cfg, has_text=bool(schema.names("text")), task=schema.task,
                      precision=resolve_precision("auto", device), threads=threads)
        tr = cfg.train
        caps = {"train": tr.max_rows, "validation": tr.max_eval_rows, "test": tr.max_eval_rows}
        split = split_table(table, schema, cfg.data.split, work / "splits", key=cfg.data.key, max_rows=caps,
                            sample_seed=tr.seed)
    finally:
        con.close()
    _log_split(split)
    pre = _fit_preprocessor(schema, split, cfg)
    torch.manual_seed(tr.seed)
    spec = NetSpec(pre.text.columns if pre.text else [], pre.tabular.n_numeric,
                   [c.cardinality for c in pre.tabular.categorical],
                   1 if schema.task == "regression" else len(schema.classes), cfg.model.hidden_size, cfg.model.dropout)
    backbone = Path(cfg.model.backbone) if pre.text else None
    net = build_model(spec, backbone, pretrained=True).to(device)
    strategy = apply_strategy(net, cfg.model.strategy, top_k=cfg.model.top_k, lora_r=cfg.model.lora_r,
                              lora_alpha=cfg.model.lora_alpha)
    model = Model(net, pre, {}, backbone_dir=backbone, precision=str(tr.precision))
    logger.info("training %s on %d rows (%s; preset %s): %s", _describe(net), split.counts["train"], strategy,
                cfg.preset, _settings(cfg))
    t_emb = time.perf_counter()
    cache = _embedding_cache(model, split, cfg) if cfg.model.strategy == "frozen" and pre.text else None
    t_emb = time.perf_counter() - t_emb
    state, weighted = _train(model, split, cfg, device, cache)
    finalize(net)  # merge LoRA adapters, unfreeze: the saved network is a plain one
    metrics = {s: _evaluate(model, split.paths[s]) for s in ("validation", "test") if split.counts.get(s)}
    training = {"train_samples_per_second": round(state.rows_per_second, 2), "train_seconds": round(state.train_seconds, 2),
                "eval_seconds": round(state.eval_seconds, 2), "total_seconds": round(time.perf_counter() - t_start, 2),
                "peak_memory_mb": round(_peak_mb(), 1), "epochs_run": state.epoch + 1, "steps": state.step,
                "best_epoch": state.best_epoch, "best_step": state.best_step, "stop_reason": state.stop_reason or "completed",
                "embedding_seconds": round(t_emb, 2), "strategy": cfg.model.strategy, "preset": cfg.preset,
                "precision": tr.precision, "threads": threads, "device": str(device), "class_weights": weighted,
                "rows": split.counts, "skipped_rows": split.skipped}
    model.meta = {"task": schema.task, "target": schema.target, "classes": schema.classes,
                  "config": cfg.model_dump(mode="json"), "metrics": metrics, "training": training,
                  "history": state.history, "data_fingerprint": split.fingerprint}
    model.save(stage / "model")
    logger.info("%s", _summary(training))
    files = {"config.resolved.yaml": dump_yaml(cfg), "metrics.json": {**metrics, "training": training},
             "schema.json": schema.to_dict(), "history.json": state.history,
             "data.fingerprint.json": {**split.fingerprint, "rows_per_split": split.counts,
                                       "class_counts": split.class_counts, "skipped": split.skipped}}
    return model, files


def _infer(table: Table, cfg: RunConfig) -> Schema:
    d = cfg.data
    exclude = {}
    for col, what in ((d.split.column, "split column"), (d.split.group, "group column"), (d.key, "row key")):
        if col:
            check_columns(table, [col], what)
            exclude[col] = what
    overrides = {"text": d.text, "categorical": d.categorical, "numeric": d.numeric, "ignore": d.ignore}
    return infer_schema(table, target=str(d.target), task=d.task, overrides=overrides, exclude=exclude,
                        sample_rows=d.sample_rows, seed=d.split.seed)


def _fit_preprocessor(schema: Schema, split: SplitResult, cfg: RunConfig) -> Preprocessor:
    train = split.paths["train"]
    tab = TabularPreprocessor.fit(schema, train, max_categories=cfg.model.max_categories,
                                  min_count=cfg.model.min_category_count)
    text = None
    if schema.names("text"):
        text = TextPreprocessor.load(schema.names("text"), cfg.model.max_length, cfg.model.backbone)
    pre = Preprocessor(schema, tab, text, class_counts=split.class_counts.get("train", {}))
    if schema.task == "regression":
        y = pq.read_table(train, columns=[schema.target]).column(0).to_numpy().astype(np.float64)
        pre.target_mean, pre.target_std = float(y.mean()), float(y.std()) or 1.0
    return pre


def _embedding_cache(model: Model, split: SplitResult, cfg: RunConfig) -> dict[str, dict[str, np.ndarray]]:
    """Pooled embeddings of the train and validation rows, from the disk cache or computed once."""
    assert model.net.text is not None and model.pre.text is not None
    cache_dir = default_cache_dir() if cfg.model.embedding_cache == "auto" else Path(cfg.model.embedding_cache)
    bid = backbone_fingerprint(Path(cfg.model.backbone))
    return {s: cached_embeddings(model.net.text, model.pre.text, split.paths[s], backbone_id=bid,
                                 precision=model.precision, device=model.device, cache_dir=cache_dir)
            for s in ("train", "validation")}


def _train(model: Model, split: SplitResult, cfg: RunConfig, device: torch.device,
           cache: dict[str, dict[str, np.ndarray]] | None = None) -> tuple[Any, bool]:
    tr, pre, net = cfg.train, model.pre, model.net
    bs = int(tr.batch_size)  # type: ignore[arg-type]
    steps_per_epoch = max(1, -(-split.counts["train"] // bs) // tr.grad_accum_steps)
    weights, weighted = None, False
    if pre.schema.task != "regression":
        counts = [pre.class_counts.get(str(c), 0) for c in pre.schema.classes]
        weights, weighted = class_weights(counts, tr.class_weights)
    sort_key = pre.text.lengths if pre.text and cache is None else None

    def batches(epoch: int) -> Any:
        for t in shuffled_batches(split.paths["train"], bs, seed=tr.seed, epoch=epoch, sort_key=sort_key,
                                  with_row_index=cache is not None):
            yield _inputs(pre, t, device, cache and cache["train"]), torch.from_numpy(pre.targets(t)).to(device), t.num_rows

    def evaluate() -> dict[str, float]:
        if cache is None:
            m = _evaluate(model, split.paths["validation"])
        else:
            m = _evaluate_cached(model, split.paths["validation"], cache["validation"])
        return {k: v for k, v in m.items() if isinstance(v, float)}

    opt = make_optimizer(net, lr=float(tr.lr), head_lr=tr.head_lr if pre.text else float(tr.lr),  # type: ignore[arg-type]
                         weight_decay=tr.weight_decay)
    epochs = int(tr.epochs)  # type: ignore[arg-type]
    sched = linear_schedule(opt, epochs * steps_per_epoch, tr.warmup_ratio)
    callbacks: list[Callback] = [EarlyStopping(tr.patience), ProgressBar(None if tr.show_progress else False)]
    if tr.time_budget:
        callbacks.append(TimeBudget(tr.time_budget))
    loop = LoopConfig(epochs=epochs, steps_per_epoch=steps_per_epoch, metric=tr.metric,
                      higher_is_better=HIGHER_IS_BETTER[tr.metric], precision=str(tr.precision), device=device,
                      grad_clip=tr.grad_clip, grad_accum_steps=tr.grad_accum_steps, eval_every_steps=tr.eval_every_steps)
    loss_fn = make_loss(pre.schema.task, weights.to(device) if weights is not None else None)
    state = fit_loop(net, batches=batches, evaluate=evaluate, loss_fn=loss_fn, optimizer=opt, scheduler=sched,
                     cfg=loop, callbacks=[_EpochLog(tr.metric), *callbacks])
    return state, weighted


def _evaluate(model: Model, path: Path) -> dict[str, Any]:
    outs, ys = [], []
    for batch, out in iter_outputs(model.net, model.pre, iter_batches(path, 256), precision=model.precision,
                                   device=model.device):
        outs.append(out)
        ys.append(model.pre.targets(batch))
    return model.score(np.concatenate(ys), np.concatenate(outs))


def _inputs(pre: Preprocessor, t: Any, device: torch.device, cache: dict[str, np.ndarray] | None) -> dict[str, Any]:
    if cache is None:
        return pre.inputs(t, device)
    rows = t.column(ROW_INDEX).to_numpy()
    out = pre.inputs(t, device, with_text=False)
    out["text_emb"] = {c: torch.from_numpy(np.ascontiguousarray(e[rows])).to(device) for c, e in cache.items()}
    return out


def _evaluate_cached(model: Model, path: Path, cache: dict[str, np.ndarray]) -> dict[str, Any]:
    outs, ys, start = [], [], 0
    model.net.eval()
    with torch.inference_mode():
        for b in iter_batches(path, 1024):
            t = pa.Table.from_batches([b])
            t = t.append_column(ROW_INDEX, pa.array(np.arange(start, start + t.num_rows)))
            start += t.num_rows
            outs.append(to_outputs(model.net(_inputs(model.pre, t, model.device, cache)), model.pre))
            ys.append(model.pre.targets(t))
    model.net.train()
    return model.score(np.concatenate(ys), np.concatenate(outs))


class _EpochLog(Callback):
    def __init__(self, metric: str) -> None:
        self.metric = metric

    def on_evaluate(self, state: Any, *, metrics: dict[str, Any], is_best: bool) -> None:
        logger.info("epoch %d step %d: train loss %.4f, validation %s %.4f%s (%.0f rows/s)", state.epoch + 1,
                    state.step, state.last_loss, self.metric, metrics[self.metric], " *" if is_best else "",
                    state.rows_per_second)


def _describe(net: HoneNet) -> str:
    n = sum(p.numel() for p in net.parameters())
    parts = [f"{len(net.spec.text_columns)} text column(s) through a {net.text.out_dim}-d backbone" if net.text else "",
             f"{net.spec.n_numeric // 2} numeric feature(s)" if net.spec.n_numeric else "",
             f"{len(net.spec.cardinalities)} categorical column(s)" if net.spec.cardinalities else ""]
    size = f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"
    return f"a {size}-parameter network with " + ", ".join(p for p in parts if p)


def _settings(cfg: RunConfig) -> str:
    t = cfg.train
    return (f"strategy={cfg.model.strategy} epochs={t.epochs} batch_size={t.batch_size} lr={t.lr} head_lr={t.head_lr} precision={t.precision} "
            f"max_length={cfg.model.max_length} class_weights={t.class_weights} metric={t.metric} seed={t.seed}")


def _log_split(split: SplitResult) -> None:
    logger.info("split: %s rows (train/validation/test)", " / ".join(str(split.counts[s]) for s in split.counts))
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
