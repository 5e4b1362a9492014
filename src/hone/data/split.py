"""Deterministic train/validation/test split by hash, written as three Parquet files.

A row's split depends only on its key (a user key column, or a hash of its feature values) and the
seed: reordering or repartitioning the input never moves a row. Classification is stratified: within
each class, rows are ranked by their hash and cut at the requested fractions. ``group`` hashes the
group column instead, so a group never straddles two splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hone.config import SplitConfig
from hone.data.schema import Schema
from hone.data.sources import Table, _quote
from hone.errors import DataError, EmptyDataError

SPLITS = ("train", "validation", "test")
_USER_SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                     "val": "validation", "dev": "validation", "test": "test", "testing": "test"}


@dataclass
class SplitResult:
    """Paths of the split Parquet files and what went where."""

    paths: dict[str, Path]
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)


def qi(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def split_table(table: Table, schema: Schema, cfg: SplitConfig, out_dir: Path, *, key: str | None = None,
                max_rows: dict[str, int | None] | None = None, sample_seed: int = 0) -> SplitResult:
    """Assign every labelled row to a split and write ``out_dir/{train,validation,test}.parquet``.

    Args:
        table: the opened input.
        schema: the inferred schema (features, target, task).
        cfg: fractions, seed, and an optional user split column or group column.
        out_dir: where the three Parquet files go.
        key: a column whose value identifies a row; default: a hash of the feature values, so exact
            duplicates always share a split.
        max_rows: optional caps per split (a deterministic random sample); skipped rows are counted.
        sample_seed: seed of the sampling and of the training file's row order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tgt = qi(schema.target)
    keep = [qi(c) for c in schema.names()] + [tgt]
    key_cols = [key] if key else ([cfg.group] if cfg.group else schema.names())
    h = f"hash({', '.join(qi(c) for c in key_cols)}, {int(cfg.seed)})"
    where = f"{tgt} IS NOT NULL" + (" AND isfinite(CAST({0} AS DOUBLE))".format(tgt) if schema.task == "regression" else "")
    split_expr = _split_expr(table, schema, cfg, h)
    con = table.con
    table.execute(f"CREATE OR REPLACE TEMP TABLE hone_rows AS SELECT {', '.join(keep)}, {split_expr} AS __split, "
              f"hash({h}, {int(sample_seed)} + 1) AS __order FROM (SELECT *, {h} AS __h FROM {table.view} WHERE {where})")
    try:
        total_missing = table.one(f"SELECT count(*) FROM {table.view} WHERE NOT ({where})")[0]
        counts = dict(table.sql("SELECT __split, count(*) FROM hone_rows GROUP BY 1").fetchall())
        res = SplitResult(paths={}, counts={}, skipped={"missing_target": int(total_missing)})
        for name in SPLITS:
            n = int(counts.get(name, 0))
            cap = (max_rows or {}).get(name)
            res.skipped[f"{name}_over_cap"] = max(0, n - cap) if cap else 0
            limit = f"LIMIT {int(cap)}" if cap else ""
            # A cap keeps a stratified random sample: rows are ordered by their random rank within
            # their class, so any prefix holds every class in its share.
            order = (f"percent_rank() OVER (PARTITION BY {tgt} ORDER BY __order), __order"
                     if cap and schema.task != "regression" else "__order")
            path = out_dir / f"{name}.parquet"
            table.execute(f"COPY (SELECT {', '.join(keep)} FROM hone_rows WHERE __split = '{name}' "
                          f"ORDER BY {order} {limit}) TO {_quote(str(path))} (FORMAT parquet, ROW_GROUP_SIZE 16384)")
            res.paths[name] = path
            res.counts[name] = min(n, cap) if cap else n
        if schema.task != "regression":
            for name in SPLITS:
                rows = table.sql(f"SELECT {tgt}, count(*) FROM read_parquet("
                                 f"{_quote(str(res.paths[name]))}) GROUP BY 1").fetchall()
                res.class_counts[name] = {str(k): int(v) for k, v in rows}
        fp = table.one(f"SELECT count(*), sum(hash({', '.join(keep)}, 7)::HUGEINT) % 18446744073709551616 "
                       "FROM hone_rows")
        res.fingerprint = {"rows": int(fp[0]), "content_hash": f"{int(fp[1] or 0):016x}"}
    finally:
        con.execute("DROP TABLE IF EXISTS hone_rows")
    _check_split(res, schema)
    return res


def _split_expr(table: Table, schema: Schema, cfg: SplitConfig, h: str) -> str:
    f0, f1, _ = cfg.fractions
    if cfg.column:
        col = qi(cfg.column)
        bad = table.sql(f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM {table.view} WHERE "
                        f"lower(trim(CAST({col} AS VARCHAR))) NOT IN ({', '.join(map(_quote, _USER_SPLIT_NAMES))}) "
                        f"OR {col} IS NULL LIMIT 3").fetchall()
        if bad:
            raise DataError(f"split column {cfg.column!r} in {table.name} has value {bad[0][0]!r}; "
                            f"expected one of train, validation (or valid, val, dev), test")
        cases = " ".join(f"WHEN {_quote(k)} THEN '{v}'" for k, v in _USER_SPLIT_NAMES.items())
        return f"CASE lower(trim(CAST({col} AS VARCHAR))) {cases} END"
    if cfg.group:
        u = "(__h % 1000003) / 1000003.0"  # a uniform draw per group
    else:
        part = f"PARTITION BY {qi(schema.target)} " if schema.task != "regression" else ""
        u = f"percent_rank() OVER ({part}ORDER BY __h)"
    return f"CASE WHEN {u} < {f0} THEN 'train' WHEN {u} < {f0 + f1} THEN 'validation' ELSE 'test' END"


def _check_split(res: SplitResult, schema: Schema) -> None:
    if res.counts.get("train", 0) == 0:
        raise EmptyDataError("no labelled rows reached the training split"
                             + (f" ({res.skipped['missing_target']} rows have no target)" if res.skipped.get("missing_target") else ""))
    if res.counts.get("validation", 0) == 0:
        raise EmptyDataError(f"the validation split is empty ({res.counts['train']} training rows); "
                             "use more rows or a larger validation fraction")
    if schema.task != "regression":
        missing = [c for c in schema.classes if str(c) not in res.class_counts.get("train", {})]
        if missing:
            raise DataError(f"class {missing[0]!r} of target {schema.target!r} has no row in the training split; "
                            "it needs more examples")
