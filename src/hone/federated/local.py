"""One silo's side of a federation, in plain hone (no Flower here): its own table, split and
statistics, and a round of hone's training loop from the global weights.

What a silo returns is only ever aggregates: counts and sums for the statistics (``summary``), the
trainable weights after a round (``train``), and a confusion matrix or sums of errors (``evaluate``)."""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hone._logging import get_logger
from hone.config import ResolvedRunConfig, RunConfig, build_config, resolve
from hone.data.sources import connect
from hone.data.split import SplitResult
from hone.errors import ConfigError
from hone.evaluation.metrics import HIGHER_IS_BETTER
from hone.features.pipeline import Preprocessor
from hone.models.feeding import Feeder
from hone.models.precision import default_device, resolve_precision
from hone.pipeline.data_stages import Prepared, infer_run_schema, prepare, threads_for
from hone.pipeline.network import build_network
from hone.train.callbacks import Callback
from hone.train.loop import fit_loop
from hone.train.placement import Placement
from hone.train.setup import assemble
from hone.train.setup import steps_per_epoch as steps_per

logger = get_logger("hone.federate")


def trainable(net: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    """The weights a round changes and a client sends: the parameters its fine-tuning strategy trains
    (the head and small encoders; LoRA adapters; the top layers; or every weight of a full fine-tune)."""
    return OrderedDict((n, p.detach()) for n, p in net.named_parameters() if p.requires_grad)


def load_trainable(net: torch.nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Copy the global weights into the network's trainable parameters (names and shapes must match)."""
    params = dict(net.named_parameters())
    expected = list(trainable(net))
    if set(expected) != set(arrays):
        odd = sorted(set(expected) ^ set(arrays))[:3]
        raise ConfigError(f"the server's weights do not fit this client's network ({len(arrays)} arrays for "
                          f"{len(expected)} trainable parameters; e.g. {odd}): server and clients must run the same "
                          "hone version and config")
    with torch.no_grad():
        for n, a in arrays.items():
            p = params[n]
            if tuple(p.shape) != tuple(a.shape):
                raise ConfigError(f"weight {n!r} is {tuple(a.shape)} on the server and {tuple(p.shape)} here")
            p.copy_(torch.from_numpy(np.asarray(a)).to(p.dtype))


def pooled_resolve(cfg: RunConfig, schema_task: str, has_text: bool, has_image: bool,
                   class_counts: list[int], train_rows: int, *, threads: int | None = None) -> ResolvedRunConfig:
    """The run config resolved from the federation's pooled counts (the same everywhere) and this
    machine's precision and threads."""
    import os

    threads = threads or max(1, os.cpu_count() or 1)
    extra: dict[str, Any] = {}
    if has_image:
        from hone.models.vision_weights import default_image_backbone

        extra = {"has_image": True, "image_backbone": cfg.model.image_backbone if cfg.model.image_backbone != "auto"
                 else default_image_backbone()}
    return resolve(cfg, has_text=has_text, task=schema_task, threads=threads,
                   precision=resolve_precision("auto", default_device()), class_counts=class_counts,
                   train_rows=train_rows, **extra)


class _StopAfter(Callback):
    """Stop once a round's share of steps is done (``federated.local_epochs`` below a whole epoch)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_batch_end(self, state: Any, *, rows: int, loss: float | None) -> None:
        if state.step >= self.steps:
            state.should_stop = True
            state.stop_reason = "the round's steps are done"


class SiloClient:
    """A silo: reads its own table, splits it as ``hone fit`` would (deterministically, without leakage)
    and trains rounds from the weights the server sends."""

    def __init__(self, source: Any, cfg: RunConfig, work: Path, *, name: str = "silo") -> None:
        self.source, self.cfg, self.name, self.work = source, cfg, name, work
        work.mkdir(parents=True, exist_ok=True)
        self.prep: Prepared | None = None
        self.salt = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
        self._setup_key: str | None = None

    @property
    def split(self) -> SplitResult:
        """The silo's split, once :meth:`prepared` made it."""
        assert self.prep is not None, "the silo is split by prepared() (or setup()) first"
        return self.prep.split

    # -- statistics --------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What the schema is agreed from: the silo's inferred schema (column names, roles and types, the
        columns it dropped) and its labels. Names only."""
        from hone.data.sources import open_table

        con = connect(self.work, self.cfg.data.memory_limit)
        try:
            table = open_table(self.source, con, encoding=self.cfg.data.encoding, work_dir=self.work)
            schema = infer_run_schema(table, self.cfg, 1)
        finally:
            con.close()
        return {"schema": {"target": schema.target, "task": schema.task, "target_dtype": schema.target_dtype,
                           "columns": [{"name": c.name, "role": c.role, "dtype": c.dtype} for c in schema.columns],
                           "dropped": sorted(schema.dropped)},  # names only: a column held but not used here
                "labels": {"values": [json.dumps(_plain(c)) for c in schema.classes]}}

    def prepared(self, schema: Any) -> Prepared:
        """The silo split as ``hone fit`` splits (deterministic, without leakage), for the agreed schema."""
        if self.prep is None or self.prep.schema.to_dict() != schema.to_dict():
            self.prep = prepare(self.cfg, self.source, self.work, schema=schema)
            counts = self.prep.split.counts
            logger.info("%s: %s rows (%s)", self.name, " / ".join(str(counts[s]) for s in counts), "/".join(counts))
        return self.prep

    def summary(self, agreed: str) -> dict[str, Any]:
        """For the agreed schema (JSON): the rows per split, the training split's count per label and its
        preprocessing statistics. Counts and sums only."""
        from hone.data.schema import Schema

        schema = Schema.from_dict(json.loads(agreed))
        prep = self.prepared(schema)
        split = prep.split
        con = connect(self.work, self.cfg.data.memory_limit, prep.hardware["threads"])
        try:
            stats = Preprocessor.local_stats(schema, split.paths["train"], con=con, cfg=self.cfg.model)
        finally:
            con.close()
        labels = split.class_counts.get("train", {}) if schema.task != "regression" else {}
        return {"rows": {s: int(n) for s, n in split.counts.items()},
                "labels": {"counts": [int(labels.get(str(c), 0)) for c in schema.classes]}, "stats": stats}

    # -- the network -----------------------------------------------------------------------------
    def setup(self, cfg_json: str, pre_json: str, pooled_json: str) -> None:
        """Build (once per setting) the network and preprocessing the server agreed on."""
        key = hashlib.sha256((cfg_json + pre_json + pooled_json).encode()).hexdigest()
        if key == self._setup_key:
            return
        cfg = build_config(json.loads(cfg_json))
        if cfg.data.target != self.cfg.data.target:
            raise ConfigError(f"the server trains on target {cfg.data.target!r}; this client was started with "
                              f"--target {self.cfg.data.target!r}")
        pooled = json.loads(pooled_json)
        self.rcfg = pooled_resolve(cfg, pooled["task"], pooled["has_text"], pooled["has_image"],
                                   pooled["class_counts"], pooled["train_rows"], threads=threads_for(cfg))
        folders = {"text": self.rcfg.model.backbone, "image": self.rcfg.model.image_backbone}
        d = json.loads(pre_json)
        pre = Preprocessor.from_dict(d, {m: Path(folders[m]) for m in d["modalities"] if m in folders})
        prep = self.prepared(pre.schema)
        pre.bind(prep.base_dir)
        self.placement = Placement.local(self.rcfg.train.precision)
        self.model, self.strategy, _, feeder = build_network(self.rcfg, pre, self.placement)
        assert feeder is not None
        self.feeder: Feeder = feeder
        self.feeder.prepare({s: p for s, p in prep.split.paths.items() if prep.split.counts.get(s)})
        self._setup_key = key

    # -- a round ---------------------------------------------------------------------------------
    def train(self, arrays: dict[str, np.ndarray], *, server_round: int, rounds: int,
              proximal_mu: float = 0.0) -> tuple[OrderedDict[str, torch.Tensor], dict[str, float]]:
        """Train ``federated.local_epochs`` of this silo's training split from the global weights;
        returns the new trainable weights and ``num-examples``, ``train-loss``, ``steps``."""
        rcfg, net, pre = self.rcfg, self.model.net, self.model.pre
        tr, fed = rcfg.train, rcfg.federated
        load_trainable(net, arrays)
        rows = self.split.counts["train"]
        steps_per_epoch = steps_per(rows, tr.batch_size, tr.grad_accum_steps)
        local_steps = max(1, round(fed.local_epochs * steps_per_epoch))
        epochs = math.ceil(local_steps / steps_per_epoch)
        torch.manual_seed(tr.seed * 1_000_003 + server_round * 7_919 + self.salt % 7_907)
        setup = assemble(tr, net, self.strategy, task=pre.schema.task,
                         class_counts=[pre.class_counts.get(str(c), 0) for c in pre.schema.classes], rows=rows,
                         higher_is_better=HIGHER_IS_BETTER[tr.metric], epochs=epochs, total_steps=rounds * local_steps,
                         start_step=(server_round - 1) * local_steps, restore_best=False)
        base_loss = loss_fn = setup.loss_fn
        if proximal_mu > 0:  # FedProx: (mu / 2) |w - w_global|^2 keeps a skewed silo near the global model
            anchor = [(p, p.detach().clone()) for p in net.parameters() if p.requires_grad]

            def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                prox = sum(((p - g) ** 2).sum() for p, g in anchor)
                return base_loss(out, y) + 0.5 * proximal_mu * prox

        first_epoch = (server_round - 1) * epochs

        def batches(epoch: int) -> Any:
            for inputs, t in self.feeder.train_batches(self.split.paths["train"], tr.batch_size,
                                                       seed=tr.seed + self.salt, epoch=first_epoch + epoch):
                yield inputs, torch.from_numpy(pre.targets(t)).to(self.placement.device), t.num_rows

        metric = tr.metric
        # validation is the server's (the evaluate messages): the loop's own end-of-epoch check is skipped
        state = fit_loop(net, batches=batches, evaluate=lambda: {metric: float("nan")}, loss_fn=loss_fn,
                         optimizer=setup.optimizer, scheduler=setup.scheduler, cfg=setup.loop, placement=self.placement,
                         callbacks=[_StopAfter(local_steps)] if local_steps % steps_per_epoch else [])
        return trainable(net), {"num-examples": int(rows), "train-loss": float(state.last_loss),
                                "steps": int(state.step), "train-seconds": float(state.train_seconds),
                                "proximal-mu": float(proximal_mu)}

    def evaluate(self, arrays: dict[str, np.ndarray], split: str) -> dict[str, Any]:
        """The global model on this silo's ``split``: a confusion matrix (classification) or sums of
        errors (regression), and the summed loss."""
        net, pre = self.model.net, self.model.pre
        load_trainable(net, arrays)
        path, n = self.split.paths.get(split), self.split.counts.get(split, 0)
        out: dict[str, Any] = {"num-examples": int(n), "loss-sum": 0.0}
        k = len(pre.schema.classes)
        if pre.schema.task != "regression":
            out["confusion"] = [0] * (k * k)
        else:
            out.update({"sse": 0.0, "sae": 0.0, "sum-y": 0.0, "sum-y2": 0.0})
        if not n or path is None:
            return out
        confusion = np.zeros((k, k), dtype=np.int64)
        for batch, o in self.feeder.outputs(path):
            y = pre.targets(batch)
            o = np.asarray(o, dtype=np.float64)
            if pre.schema.task == "regression":
                pred = o[:, 0] * pre.target_std + pre.target_mean
                true = y.astype(np.float64) * pre.target_std + pre.target_mean
                out["loss-sum"] += float(((o[:, 0] - y) ** 2).sum())
                out["sse"] += float(((pred - true) ** 2).sum())
                out["sae"] += float(np.abs(pred - true).sum())
                out["sum-y"] += float(true.sum())
                out["sum-y2"] += float((true ** 2).sum())
            else:
                z = o - o.max(axis=1, keepdims=True)
                logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
                out["loss-sum"] += float(-logp[np.arange(len(y)), y].sum())
                np.add.at(confusion, (y, o.argmax(axis=1)), 1)
        if pre.schema.task != "regression":
            out["confusion"] = [int(v) for v in confusion.ravel()]
        return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
