"""The data stages of a run: open the source, audit and clean it, infer the schema, split it, and fit
the preprocessor on the training split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hone._logging import get_logger
from hone.config import ResolvedRunConfig, RunConfig, resolve
from hone.data.schema import Schema, check_columns, infer_schema
from hone.data.sources import Table, connect, open_table
from hone.data.split import SplitResult, hold_out_choice, merge_validation_into_train, split_table
from hone.features.pipeline import Preprocessor
from hone.models.precision import default_device, resolve_precision

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


def threads_for(cfg: RunConfig) -> int:
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
    threads = threads_for(cfg)
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

            table, cleaning = clean_table(
                table, schema, label_errors=quality.extras.get("label_errors") if quality else None
            )
            schema = given or infer_run_schema(table, cfg, min_classes)  # label spellings merged: the classes change
            logger.info(
                "cleaned: %d label spelling(s) merged, %d likely label error(s), %d duplicate row(s) and %d "
                "conflicting-label row(s) dropped (cleaning.json)",
                len(cleaning["label_merges"]),
                cleaning["dropped_label_errors"],
                cleaning["dropped_duplicates"],
                cleaning["dropped_conflicting"],
            )
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

    threads = threads_for(cfg)
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


def infer_run_schema(table: Table, cfg: RunConfig, min_classes: int = 2) -> Schema:
    """The schema of a run's table: the split column, group and key are never features."""
    d = cfg.data
    exclude = {}
    for col, what in ((d.split.column, "split column"), (d.split.group, "group column"), (d.key, "row key")):
        if col:
            check_columns(table, [col], what)
            exclude[col] = what
    overrides = {
        "text": d.text,
        "image": d.image,
        "categorical": d.categorical,
        "numeric": d.numeric,
        "ignore": d.ignore,
    }
    return infer_schema(table, target=str(d.target), task=d.task, overrides=overrides, exclude=exclude,
                        sample_rows=d.sample_rows, seed=d.split.seed, min_classes=min_classes)


