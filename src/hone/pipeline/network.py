"""The network of a run: build it from the resolved config and the preprocessor, and train it with
early stopping on validation (the data-parallel processes included)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from hone._logging import get_logger
from hone.artifact import Model
from hone.config import ResolvedRunConfig, RunConfig
from hone.data.split import SplitResult
from hone.evaluation.metrics import HIGHER_IS_BETTER
from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet, NetSpec, build_model
from hone.models.feeding import Feeder
from hone.models.strategies import Strategy, get_strategy
from hone.pipeline.after import collect
from hone.pipeline.data_stages import Prepared, adopt, fit_preprocessor, prepare
from hone.train.callbacks import Callback, EarlyStopping, ProgressBar, TimeBudget
from hone.train.loop import Loop, fit_loop
from hone.train.placement import Placement
from hone.train.setup import assemble
from hone.train.state import TrainState

logger = get_logger("hone.fit")


@dataclass
class Trained:
    """A trained network (best validation weights restored) and how its training went."""

    model: Model
    state: TrainState
    weights: np.ndarray | None  # the class weights of the loss, if any
    resumed_from: int
    embedding_seconds: float
    placement: Placement


def build_network(rcfg: ResolvedRunConfig, pre: Preprocessor, placement: Placement, *, feeder: bool = True
                  ) -> tuple[Model, Strategy, str, Feeder | None]:
    """The network for ``rcfg`` and ``pre`` (pretrained backbones, seeded head) on the placement's device,
    prepared by its fine-tuning strategy (frozen, top-k, LoRA...), as an unsaved :class:`Model`; with the
    strategy, its description and (``feeder``) the batches' feeder."""
    torch.manual_seed(rcfg.train.seed)
    task, classes = pre.schema.task, pre.schema.classes
    spec = NetSpec(pre.encoder_specs(), 1 if task == "regression" else len(classes), rcfg.model.hidden_size,
                   rcfg.model.dropout)
    folders = {"text": rcfg.model.backbone, "image": rcfg.model.image_backbone}
    assets: dict[str, Path] = {m: Path(folders[m]) for m in ("text", "image") if m in pre.modalities}
    net = build_model(spec, assets, pretrained=True).to(placement.device)
    warm = None
    if rcfg.model.init_from:
        from hone.pipeline.warm import warm_start

        warm = warm_start(net, pre, Path(rcfg.model.init_from))
    if net.text is not None and rcfg.model.backbone_dropout is not None:
        net.text.set_dropout(rcfg.model.backbone_dropout)
    strategy = get_strategy(rcfg.model.strategy)
    described = strategy.prepare(net, rcfg.model)
    if rcfg.train.compile and net.text is not None:
        net.text.backbone.compile(dynamic=True)  # in place: the weights keep their names
    fed = None
    if feeder:
        fed = strategy.feeder(net, pre, device=placement.device, precision=placement.precision,
                              cache_dir=Path(rcfg.model.embedding_cache), backbones=assets)
        fed.prefetch = rcfg.train.prefetch
    model = Model(net, pre, {"init_from": warm} if warm else {}, assets=assets, precision=placement.precision)
    return model, strategy, described, fed


PACE_SOURCE_ROWS = 4096


@dataclass(frozen=True)
class Pace:
    """Seconds per row of each fine-tuning strategy's training step, measured on this table's rows
    and this machine (:func:`measure_pace`); ``forward`` is also a validation pass's and the frozen
    strategy's one embedding pass."""

    forward: float
    top_k: float
    full: float
    seconds: float  # what measuring took, the network's construction included

    def step(self, strategy: str) -> float:
        return self.top_k if strategy == "top-k" else self.full


def measure_pace(rcfg: ResolvedRunConfig, pre: Preprocessor, train: Path, *, rows: int = 64) -> Pace:
    """Time a forward pass, and a forward and backward pass with the top layers and with every layer
    training, on ``rows`` training rows drawn at random from the first PACE_SOURCE_ROWS (sorted by
    length into batches, as the training's length buckets are), after one warm-up batch."""
    import pyarrow.parquet as pq

    from hone.models.strategies import TopK

    t0 = time.perf_counter()
    placement = Placement.local(rcfg.train.precision)
    plain = rcfg.model_copy(update={"model": rcfg.model.model_copy(update={"strategy": "full", "init_from": None})})
    model, _, _, _ = build_network(plain, pre, placement, feeder=False)
    net = model.net
    first = next(pq.ParquetFile(train).iter_batches(batch_size=PACE_SOURCE_ROWS), None)  # never the whole split
    if first is None:
        raise ValueError(f"{train} has no rows")
    table = pa.Table.from_batches([first])
    picked = np.random.default_rng(rcfg.train.seed).choice(table.num_rows, min(rows, table.num_rows), replace=False)
    sample = table.take(np.sort(picked))
    lengths = pre.lengths(sample)
    if lengths is not None:
        sample = sample.take(np.argsort(lengths, kind="stable"))
    size = max(1, min(rcfg.train.batch_size, sample.num_rows))
    batches = [pre.inputs(sample.slice(i, size), placement.device) for i in range(0, sample.num_rows, size)]

    def timed(train: bool, only: list[Any] | None = None) -> float:
        net.train(train)
        start = time.perf_counter()
        for inputs in only or batches:
            with placement.autocast(), torch.set_grad_enabled(train):
                out = net(inputs)
            if train:
                out.float().sum().backward()
        net.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) / sample.num_rows

    timed(False, batches[:1])  # warm-up: the first passes allocate and pick kernels
    timed(True, batches[:1])
    forward, full = timed(False), timed(True)
    if net.backbones():
        TopK().prepare(net, rcfg.model)
        top_k = timed(True)
    else:
        top_k = full
    return Pace(forward, top_k, full, time.perf_counter() - t0)


def train_network(prep: Prepared, rcfg: ResolvedRunConfig, pre: Preprocessor, callbacks: Iterable[Callback] = (),
                  resume_state: str | Path | None = None, log: bool = True) -> Trained:
    """Build the network for ``rcfg``, train it on the training split with early stopping on
    validation (``resume_state``: continue from a saved loop state) and finalise its strategy."""
    split = prep.split
    placement = Placement.from_env(rcfg.train.precision)  # data-parallel under torchrun or Ray Train
    model, strategy, described, feeder = build_network(rcfg, pre, placement)
    assert feeder is not None
    net, assets = model.net, model.assets
    chosen = f"{described}; preset {rcfg.preset}" if assets else "no pretrained backbone"
    if log:
        logger.info("training %s on %d rows (%s): %s", _describe(net), split.counts["train"], chosen,
                    _settings(rcfg, "text" in pre.modalities, "image" in pre.modalities))
    images = pre.images
    if images is not None:
        images.strict = True  # an image that does not decode while training is an error, not a missing image
    try:
        t_emb = time.perf_counter()
        feeder.prepare(split.paths)
        t_emb = time.perf_counter() - t_emb
        state, weights, resumed_from = _train(model, split, rcfg, placement, feeder, strategy, list(callbacks),
                                              resume_state=resume_state)
    finally:
        if images is not None:
            images.strict = False
    placement.close()  # the last collective was the training's: the rest runs on the main process only
    strategy.finalize(net)  # merge LoRA adapters, unfreeze: the saved network is a plain one
    return Trained(model, state, weights, resumed_from, t_emb, placement)


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


def _train(
    model: Model,
    split: SplitResult,
    cfg: ResolvedRunConfig,
    placement: Placement,
    feeder: Feeder,
    strategy: Strategy,
    extra: list[Callback],
    resume_state: str | Path | None = None,
) -> tuple[Any, np.ndarray | None, int]:
    tr, pre, net = cfg.train, model.pre, model.net
    on_validation = tr.fit_on == "train+validation"  # no early stopping on rows it trains on
    counts = [pre.class_counts.get(str(c), 0) for c in pre.schema.classes]
    setup = assemble(tr, net, strategy, task=pre.schema.task, class_counts=counts, rows=split.counts["train"],
                     higher_is_better=HIGHER_IS_BETTER[tr.metric], device=placement.device,
                     eval_every_steps=tr.eval_every_steps, restore_best=not on_validation)
    opt, sched, loss_fn, loop = setup.optimizer, setup.scheduler, setup.loss_fn, setup.loop

    def batches(epoch: int) -> Iterator[Any]:
        for inputs, t in feeder.train_batches(split.paths["train"], tr.batch_size, seed=tr.seed, epoch=epoch,
                                              rank=placement.rank, world_size=placement.world_size):
            yield inputs, torch.from_numpy(pre.targets(t)).to(placement.device), t.num_rows

    def evaluate() -> dict[str, float]:
        m = score(model, feeder.outputs(split.paths["validation"]))
        return {k: v for k, v in m.items() if isinstance(v, float)}

    # one process logs, draws and saves; every process stops early on the same (identical) metrics
    callbacks: list[Callback] = [_EpochLog(tr.metric), ProgressBar(None if tr.show_progress else False)] \
        if placement.is_main else []
    if not on_validation:
        callbacks.append(EarlyStopping(tr.patience))
    if tr.time_budget:
        callbacks.append(TimeBudget(tr.time_budget))
    state, best, resumed_from = None, None, 0
    if resume_state is not None:
        from hone.train.checkpoint import load_loop_state

        holder = Loop(net, opt, sched, loss_fn, placement, loop, {})
        state = load_loop_state(resume_state, holder)
        best, resumed_from = holder.best, state.step
        logger.info("resuming at step %d (epoch %d, batch %d of it) from %s", state.step, state.epoch + 1,
                    state.batch_in_epoch, resume_state)
    state = fit_loop(net, batches=batches, evaluate=evaluate, loss_fn=loss_fn, optimizer=opt, scheduler=sched,
                     cfg=loop, placement=placement, callbacks=[*callbacks, *(extra if placement.is_main else [])],
                     state=state, best=best)
    return state, setup.class_weights, resumed_from


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


