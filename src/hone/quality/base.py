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
from hone.data.neardup import near_duplicate_clusters
from hone.data.schema import Schema
from hone.data.sources import Table
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
    extras: dict[str, Any] = field(default_factory=dict)  # machine-readable sections of audit.json

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
    return f"(SELECT {cols}, row_number() OVER () - 1 AS __row FROM {(table.raw_view or table.view) if raw else table.view})"
