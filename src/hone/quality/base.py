"""Findings and the registry of checks.

A check looks at an opened table (and the inferred schema) and returns findings: what is wrong,
how bad, how many rows, examples (row numbers and values), and the remedy where one applies.
Adding a check is one new module that registers a function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hone.config import RunConfig
from hone.data.neardup import near_duplicate_clusters, text_key
from hone.data.schema import Schema
from hone.data.sources import Table
from hone.data.split import feature_key
from hone.data.sql import qi

Severity = Literal["info", "warning", "error"]


@dataclass
class Finding:
    """One problem found in the data."""

    check: str
    severity: Severity
    message: str
    count: int = 0
    column: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    remedy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What the checks of one audit share: the run's config and work done once for several checks."""

    cfg: RunConfig = field(default_factory=RunConfig)
    near_duplicates: int | None = None  # texts in clusters, once ``hone_neardup`` exists
    row_keys_built: bool = False  # ``hone_rowkeys`` exists
    extras: dict[str, Any] = field(default_factory=dict)  # machine-readable sections of audit.json

    def row_keys(self, table: Table, schema: Schema) -> str:
        """The temp table ``hone_rowkeys(__row, __k, __t, __y)`` (once per audit): each labelled row's
        position in the source, duplicate key (:func:`hone.data.split.feature_key`), text key
        (:func:`hone.data.neardup.text_key`, NULL without text) and label as text. A few bytes a
        row, whatever the table's width."""
        if not self.row_keys_built:
            tgt, tk = qi(schema.target), text_key(schema) or "NULL::UBIGINT"
            keys = f"SELECT {feature_key(schema)} AS __k, {tk} AS __t, CAST({tgt} AS VARCHAR) AS __y FROM {table.view}"
            table.execute(f"CREATE OR REPLACE TEMP TABLE hone_rowkeys AS SELECT * FROM (SELECT *, row_number() OVER () "
                          f"- 1 AS __row FROM ({keys})) WHERE __y IS NOT NULL")
            self.row_keys_built = True
        return "hone_rowkeys"

    def near_duplicate_texts(self, table: Table, schema: Schema) -> int:
        """Build the temp table ``hone_neardup`` over the labelled rows (once per audit)."""
        if self.near_duplicates is None:
            threshold = self.cfg.data.split.near_duplicates or 0.7
            self.near_duplicates = near_duplicate_clusters(table, schema, threshold=threshold,
                                                           where=f"{qi(schema.target)} IS NOT NULL")
        return self.near_duplicates


CheckFn = Callable[[Table, Schema, Context], list[Finding]]
CHECKS: dict[str, CheckFn] = {}


def register(name: str) -> Callable[[CheckFn], CheckFn]:
    """Decorator: add a check to the audit under ``name``."""
    def deco(fn: CheckFn) -> CheckFn:
        CHECKS[name] = fn
        return fn

    return deco


def numbered(table: Table, columns: list[str], *, raw: bool = False) -> str:
    """``columns`` of the table (``raw``: as read, before type conversion) with ``__row``, each
    row's 0-based position in the source as read. Only the columns asked for are numbered: the
    window holds a few bytes a row, not the whole table."""
    cols = ", ".join(qi(c) for c in columns)
    view = (table.raw_view or table.view) if raw else table.view
    return f"(SELECT {cols}, row_number() OVER () - 1 AS __row FROM {view})"
