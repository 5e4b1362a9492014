"""Deterministic train/validation/test split by hash, written as three Parquet files.

A row's split depends only on its key and ``split.seed``: reordering or repartitioning the input
never moves a row, and neither does the training seed. The key is, in order of precedence, the
``group`` column (a group never straddles two splits), the user's ``key`` column, or a hash of the
row's feature values with text normalised (:func:`feature_key`), so rows with the same features
share a split whatever their labels, and so do texts that differ only by case, spacing or
punctuation. Without a group or key, near-duplicate texts (:mod:`hone.data.neardup`: a word changed,
a tag appended) are grouped too: a cluster's rows take its key.

Classification is stratified at the level of keys: each key is given its most frequent label, keys
are ranked by hash within that label and cut at the requested fractions, and every row follows its
key. Caps (``--max-rows``, ``--max-eval-rows``) keep a stratified sample chosen by another hash of
the key and ``split.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hone._logging import get_logger
from hone.config import SplitConfig
from hone.data.neardup import near_duplicate_clusters, normalised_text, text_key
from hone.data.schema import Schema, feature_selects
from hone.data.sources import Table
from hone.data.sql import qi, ql, qn
from hone.errors import DataError, EmptyDataError

logger = get_logger("hone.split")

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


def split_table(table: Table, schema: Schema, cfg: SplitConfig, out_dir: Path, *, key: str | None = None,
                max_rows: dict[str, int | None] | None = None) -> SplitResult:
    """Assign every labelled row to a split and write ``out_dir/{train,validation,test}.parquet``.

    Args:
        table: the opened input.
        schema: the inferred schema (features, target, task).
        cfg: fractions, seed, and an optional user split column or group column.
        out_dir: where the three Parquet files go.
        key: a column whose value identifies a row; default: a hash of the feature values, so exact
            duplicates always share a split. A ``cfg.group`` takes precedence.
        max_rows: optional caps per split (a stratified sample that depends on ``cfg.seed`` only);
            skipped rows are counted.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    tgt = qi(schema.target)
    keep = feature_selects(schema, table) + [tgt]
    names = [qi(c) for c in schema.names()] + [tgt]
    seed = int(cfg.seed)
    h = (
        f"hash({qi(cfg.group)}, {seed})"
        if cfg.group
        else f"hash({qi(key)}, {seed})"
        if key
        else feature_key(schema, seed)
    )
    where = f"{tgt} IS NOT NULL" + (f" AND isfinite(CAST({tgt} AS DOUBLE))" if schema.task == "regression" else "")
    classify = schema.task != "regression"
    user = user_split_expr(table, cfg) if cfg.column else None
    source = table.view
    if not (cfg.group or key or user) and cfg.near_duplicates > 0 and text_key(schema):
        # near-duplicate texts (one word changed, a retweet) form a group: one split per cluster
        near_duplicate_clusters(table, schema, threshold=cfg.near_duplicates, where=where)
        source = f"{table.view} LEFT JOIN hone_neardup __nd ON __nd.__t = {text_key(schema)}"
        h = f"CASE WHEN __nd.__c IS NULL THEN {h} ELSE hash(__nd.__c, {seed}) END"
    table.execute(f"CREATE OR REPLACE TEMP TABLE hone_rows AS SELECT {', '.join(keep)}, {h} AS __h"
                  + (f", {user} AS __user" if user else "") + f" FROM {source} WHERE {where}")
    table.con.execute("DROP TABLE IF EXISTS hone_neardup")
    try:
        # __tie orders rows that share a key (duplicates, a group) by their content: deterministic caps
        order = f"hash(r.__h, {seed} + 1) AS __order, hash({', '.join('r.' + n for n in names)}) AS __tie"
        if user:  # the user's own split: each row keeps it
            table.execute(f"CREATE OR REPLACE TEMP TABLE hone_split AS SELECT r.*, r.__user AS __split, "
                          f"{tgt if classify else 'NULL'} AS __cls, {order} FROM hone_rows r")
        else:
            table.execute(f"CREATE OR REPLACE TEMP TABLE hone_keys AS {_key_splits(schema, cfg, tgt)}")
            table.execute(f"CREATE OR REPLACE TEMP TABLE hone_split AS SELECT r.*, k.__split, k.__cls, {order} "
                          "FROM hone_rows r JOIN hone_keys k USING (__h)")
        table.execute("DROP TABLE hone_rows")  # one copy of the rows in DuckDB's storage, not two
        total_missing = table.one(f"SELECT count(*) FROM {table.view} WHERE NOT ({where})")[0]
        counts = dict(table.sql("SELECT __split, count(*) FROM hone_split GROUP BY 1").fetchall())
        res = SplitResult(paths={}, counts={}, skipped={"missing_target": int(total_missing)})
        for name in SPLITS:
            n = int(counts.get(name, 0))
            cap = (max_rows or {}).get(name)
            res.skipped[f"{name}_over_cap"] = max(0, n - cap) if cap else 0
            limit = f"LIMIT {int(cap)}" if cap else ""
            # A cap keeps a stratified random sample: rows are ordered by their random rank within
            # their key's class, so any prefix holds every class in its share.
            order = ("percent_rank() OVER (PARTITION BY __cls ORDER BY __order, __tie), __order, __tie"
                     if cap and classify else "__order, __tie")
            path = out_dir / f"{name}.parquet"
            table.execute(f"COPY (SELECT {', '.join(names)} FROM hone_split WHERE __split = '{name}' "
                          f"ORDER BY {order} {limit}) TO {ql(path)} (FORMAT parquet, ROW_GROUP_SIZE 16384)")
            res.paths[name] = path
            res.counts[name] = min(n, cap) if cap else n
        res.fingerprint = _fingerprint(table, names, res)
        groups = int(table.one("SELECT count(DISTINCT __h) FROM hone_split")[0] or 0)
        if classify:
            for name in SPLITS:
                rows = table.sql(
                    f"SELECT {tgt}, count(*) FROM read_parquet({ql(res.paths[name])}) GROUP BY 1"
                ).fetchall()
                res.class_counts[name] = {str(k): int(v) for k, v in rows}
    finally:
        table.con.execute(
            "DROP TABLE IF EXISTS hone_rows; DROP TABLE IF EXISTS hone_keys; DROP TABLE IF EXISTS hone_split"
        )
    _check_split(res, schema, groups=groups, by=cfg.group or key)
    return res


def feature_key(schema: Schema, seed: int = 0) -> str:
    """The SQL hash of a row's feature values (text columns normalised): rows with equal keys are
    duplicates, for the split (they share one) and for the audit (:mod:`hone.quality.duplicates`)."""
    parts = [normalised_text(qi(c.name)) if c.role == "text" else qi(c.name) for c in schema.columns]
    return f"hash({', '.join(parts)}, {int(seed)})"


def user_split_expr(table: Table, cfg: SplitConfig) -> str:
    """The SQL expression mapping the user's split column to train/validation/test (values checked)."""
    col = qi(str(cfg.column))
    bad = table.sql(f"SELECT DISTINCT CAST({col} AS VARCHAR) FROM {table.view} WHERE "
                    f"lower(trim(CAST({col} AS VARCHAR))) NOT IN ({', '.join(map(ql, _USER_SPLIT_NAMES))}) "
                    f"OR {col} IS NULL LIMIT 3").fetchall()
    if bad:
        raise DataError(f"split column {cfg.column!r} in {table.name} has value {bad[0][0]!r}; "
                        f"expected one of train, validation (or valid, val, dev), test")
    cases = " ".join(f"WHEN {ql(k)} THEN '{v}'" for k, v in _USER_SPLIT_NAMES.items())
    return f"CASE lower(trim(CAST({col} AS VARCHAR))) {cases} END"


def _key_splits(schema: Schema, cfg: SplitConfig, tgt: str) -> str:
    """One row per key: ``__h``, its class for stratification ``__cls`` and its ``__split``."""
    f0, f1, _ = cfg.fractions
    if schema.task == "regression":
        keys = "SELECT DISTINCT __h, NULL AS __cls FROM hone_rows"
    else:  # a key's most frequent label (the smallest on a tie): conflicting duplicates follow it
        per_label = f"SELECT __h, {tgt} AS __y, count(*) AS __n FROM hone_rows GROUP BY ALL"
        keys = f"SELECT __h, first(__y ORDER BY __n DESC, __y) AS __cls FROM ({per_label}) GROUP BY __h"
    u = "percent_rank() OVER (PARTITION BY __cls ORDER BY __h)"
    return (f"SELECT __h, __cls, CASE WHEN {u} < {qn(f0)} THEN 'train' WHEN {u} < {qn(f0 + f1)} THEN 'validation' "
            f"ELSE 'test' END AS __split FROM ({keys})")


def _fingerprint(table: Table, names: list[str], res: SplitResult) -> dict[str, Any]:
    """Row count and an order-independent content hash, of all labelled rows and of each split file."""
    def one(src: str) -> dict[str, Any]:
        n, s = table.one(
            f"SELECT count(*), sum(hash({', '.join(names)}, 7)::HUGEINT) % 18446744073709551616 FROM {src}"
        )
        return {"rows": int(n), "content_hash": f"{int(s or 0):016x}"}

    out = one("hone_split")
    out["splits"] = {name: one(f"read_parquet({ql(path)})") for name, path in res.paths.items()}
    return out


def _check_split(res: SplitResult, schema: Schema, *, groups: int = 0, by: str | None = None) -> None:
    """Refuse a split that left nothing to train or validate on, naming the cause (too few groups,
    too many classes, too few rows)."""
    if res.counts.get("train", 0) == 0:
        raise EmptyDataError(
            "no labelled rows reached the training split"
            + (f" ({res.skipped['missing_target']} rows have no target)" if res.skipped.get("missing_target") else "")
        )
    if res.counts.get("validation", 0) == 0 and schema.task != "regression":
        per_class = res.class_counts.get("train", {})
        rare = sum(1 for c in schema.classes if per_class.get(str(c), 0) < 3)
        if rare > len(schema.classes) / 2:
            raise DataError(
                f"target {schema.target!r} has too many classes for its rows: {len(schema.classes)} classes "
                f"in {sum(res.counts.values())} labelled rows, {rare} of them with fewer than 3 rows, so no "
                "row is left to validate on; is it an identifier? Predict a coarser column, or pass "
                "--task regression if it is a number"
            )
    if res.counts.get("validation", 0) == 0 and by and groups < 10:
        raise DataError(f"the validation split is empty: the {sum(res.counts.values())} labelled rows form only "
                        f"{groups} group(s) of {by!r}, and a group never straddles two splits; group by a column with "
                        "more values, or leave the grouping out")
    if res.counts.get("validation", 0) == 0 and groups < 10:
        raise DataError(
            f"the validation split is empty: the {sum(res.counts.values())} labelled rows hold only {groups} "
            "distinct combination(s) of feature values, and identical rows always share a split; "
            "check that the feature columns were read as you expect (hone fit prints their roles)"
        )
    if res.counts.get("validation", 0) == 0:
        raise EmptyDataError(f"the validation split is empty ({res.counts['train']} training rows); "
                             "use more rows or a larger validation fraction")
    if schema.task != "regression":
        missing = [c for c in schema.classes if str(c) not in res.class_counts.get("train", {})]
        if missing:
            raise DataError(f"class {missing[0]!r} of target {schema.target!r} has no row in the training split; "
                            "it needs more examples")


def hold_out_choice(con: Any, split: SplitResult, fraction: float, target: str) -> None:
    """Move ``fraction`` of the validation rows (by row hash: deterministic, duplicates together) to a
    ``choice`` split for the model choice, calibration and threshold; early stopping and a search see
    only the rest."""
    src = split.paths["validation"]
    cut = int(round(fraction * 10_000))
    parts = {"choice": src.with_name("choice.parquet"), "validation": src.with_name("validation_search.parquet")}
    for name, path in parts.items():
        cond = f"hash(t) % 10000 {'<' if name == 'choice' else '>='} {cut}"
        con.execute(f"COPY (SELECT * FROM read_parquet({ql(src)}) t WHERE {cond}) TO {ql(path)} "
                    "(FORMAT parquet, ROW_GROUP_SIZE 16384)")
    counts = {
        n: int(con.execute(f"SELECT count(*) FROM read_parquet({ql(p)})").fetchone()[0]) for n, p in parts.items()
    }
    if min(counts.values()) < 10:
        logger.warning("validation split too small (%d rows) to hold out %.0f%% for the model choice: it serves both",
                       split.counts["validation"], fraction * 100)
        return
    split.paths.update(parts)
    split.counts.update(counts)
    split.counts = {k: split.counts[k] for k in ("train", "validation", "choice", "test") if k in split.counts}
    if split.class_counts:
        for name, path in parts.items():
            rows = con.execute(f"SELECT {qi(target)}, count(*) FROM read_parquet({ql(path)}) GROUP BY 1").fetchall()
            split.class_counts[name] = {str(k): int(v) for k, v in rows}


def merge_validation_into_train(con: Any, split: SplitResult) -> None:
    """Training rows become train + validation (the refit of a search); validation stays for the
    choices made on it, which are then optimistic, and test is untouched."""
    path = split.paths["train"].with_name("train_validation.parquet")
    con.execute(f"COPY (SELECT * FROM read_parquet([{ql(split.paths['train'])}, {ql(split.paths['validation'])}])) "
                f"TO {ql(path)} (FORMAT parquet, ROW_GROUP_SIZE 16384)")
    split.paths["train"] = path
    split.counts["train"] += split.counts.get("validation", 0)
    merged = dict(split.class_counts.get("train", {}))
    for c, n in split.class_counts.get("validation", {}).items():
        merged[c] = merged.get(c, 0) + n
    if split.class_counts:
        split.class_counts["train"] = merged
    logger.warning("training on train + validation (%d rows) for the set epochs: validation metrics and the "
                   "choices made on them are optimistic; the test split is untouched", split.counts["train"])
