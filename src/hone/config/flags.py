"""The one flag table: the short names of config fields, for ``hone.fit(epochs=3)``, ``hone fit --epochs 3``
and the search space, and which commands take which."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from hone.config.sections import RunConfig

# Every setting with a short name, once: the keyword of ``hone.fit(epochs=3)``, the flag of
# ``hone fit --epochs 3`` and the parameter of a search space (``tune.space.lr``). The CLI builds each
# flag's type, choices and help from the field named here, so a setting is declared in one place: its
# section model. One word, one meaning: ``strategy`` is the fine-tuning strategy, ``aggregation`` the
# federation's, ``workers`` Ray workers, ``threads`` threads on this machine.
FLAGS: dict[str, str] = {
    # data and audit
    "task": "data.task", "text": "data.text", "image": "data.image", "categorical": "data.categorical",
    "numeric": "data.numeric", "ignore": "data.ignore", "key": "data.key", "group": "data.split.group",
    "split_column": "data.split.column", "near_duplicates": "data.split.near_duplicates", "encoding": "data.encoding",
    "clean": "data.clean", "audit": "quality.audit", "label_errors": "quality.label_errors",
    "label_error_threshold": "quality.label_error_threshold", "label_error_rows": "quality.label_error_rows",
    # the network
    "name": "name", "preset": "preset", "strategy": "model.strategy", "backbone": "model.backbone",
    "max_length": "model.max_length", "image_backbone": "model.image_backbone", "top_k": "model.top_k",
    "lora_r": "model.lora_r", "dropout": "model.dropout", "init_from": "model.init_from",
    # training
    "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr", "head_lr": "train.head_lr",
    "weight_decay": "train.weight_decay", "warmup_ratio": "train.warmup_ratio",
    "grad_accum_steps": "train.grad_accum_steps", "patience": "train.patience", "seed": "train.seed",
    "max_rows": "train.max_rows", "max_eval_rows": "train.max_eval_rows", "time_budget": "train.time_budget",
    "precision": "train.precision", "threads": "train.num_threads", "show_progress": "train.show_progress",
    "checkpoint_every_steps": "train.checkpoint_every_steps",
    # evaluation
    "model": "evaluate.model", "threshold_objective": "evaluate.threshold_objective",
    # the clock, and hone auto
    "time_limit": "auto.time_limit", "infer_limit": "auto.infer_limit", "families": "auto.families",
    # where it runs
    "engine": "engine.kind", "workers": "engine.workers", "address": "engine.address",
    # search (hone tune)
    "trials": "tune.trials", "timeout": "tune.timeout", "jobs": "tune.jobs", "pruner": "tune.pruner",
    "sampler": "tune.sampler", "searcher": "tune.searcher", "refit": "tune.refit",
    # federation (hone federate)
    "rounds": "federated.rounds", "local_epochs": "federated.local_epochs", "aggregation": "federated.aggregation",
    "proximal_mu": "federated.proximal_mu", "min_fraction": "federated.min_fraction",
    "min_clients": "federated.min_clients", "dp_noise": "federated.dp_noise", "dp_clip": "federated.dp_clip",
    "dp_delta": "federated.dp_delta",
}

# Flags spelt other than ``--`` + the short name with dashes (kept for the commands people already use).
SPELLINGS = {"grad_accum_steps": "--grad-accum", "show_progress": "--progress"}


def flag_of(name: str) -> str:
    """The command-line flag of a short name (``batch_size`` -> ``--batch-size``)."""
    return SPELLINGS.get(name, "--" + name.replace("_", "-"))


# The parameters a search space may hold (hone.search.space), by the same short names.
SEARCHABLE = ("lr", "head_lr", "epochs", "batch_size", "dropout", "weight_decay", "warmup_ratio", "lora_r", "top_k")

_AUDIT = ("task", "text", "categorical", "numeric", "ignore", "key", "group", "split_column", "near_duplicates",
          "encoding", "label_errors", "label_error_threshold", "label_error_rows")


_AUTO_ONLY = ("infer_limit", "families")


def command_flags(command: str) -> tuple[str, ...]:
    """The short names a command takes as flags (and ``hone.<command>`` as keywords)."""
    def section(name: str) -> str:
        return FLAGS[name].split(".")[0]

    if command == "audit":
        return _AUDIT
    if command == "tune":
        return tuple(n for n in FLAGS if section(n) not in ("federated", "auto"))
    if command == "federate":
        return tuple(n for n in FLAGS if section(n) not in ("tune", "engine", "evaluate", "auto"))
    if command == "auto":
        return tuple(n for n in FLAGS if section(n) not in ("tune", "federated"))
    return tuple(n for n in FLAGS if section(n) not in ("tune", "federated") and n not in _AUTO_ONLY)  # fit


def field_of(dotted: str) -> Any:
    """The pydantic ``FieldInfo`` of a dotted config field (``"train.epochs"``)."""
    model: type[BaseModel] = RunConfig
    parts = dotted.split(".")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    return model.model_fields[parts[-1]]


