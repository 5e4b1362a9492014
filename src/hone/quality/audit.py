"""Run every registered check on a table: the audit report (findings, summary, JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hone.config import RunConfig
from hone.data.schema import Schema
from hone.data.sources import Table
from hone.quality import columns, duplicates, label_errors, labels, near_duplicates  # noqa: F401  (each registers its checks)
from hone.quality.base import CHECKS, Context, Finding

_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class QualityReport:
    """The findings of an audit, most severe first."""

    source: str
    rows: int
    findings: list[Finding] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "rows": self.rows, "findings": [f.to_dict() for f in self.findings],
                "summary": {s: sum(1 for f in self.findings if f.severity == s) for s in _ORDER}, **self.extras}

    def __str__(self) -> str:
        lines = [f"audit of {self.source}: {self.rows} rows, " +
                 ", ".join(f"{n} {s}(s)" for s, n in self.to_dict()["summary"].items() if n)]
        for f in self.findings:
            if f.severity != "info":
                lines.append(f"  {f.severity:<8} {f.check}: {f.message}" + (f" -> {f.remedy}" if f.remedy else ""))
        return "\n".join(lines)


def audit(table: Table, schema: Schema, cfg: RunConfig | None = None, checks: list[str] | None = None) -> QualityReport:
    """Run ``checks`` (default: all registered) and collect their findings."""
    rows = int(table.one(f"SELECT count(*) FROM {table.view}")[0])
    ctx = Context(cfg or RunConfig())
    found: list[Finding] = []
    try:
        for name in checks or list(CHECKS):
            found += CHECKS[name](table, schema, ctx)
    finally:
        table.con.execute("DROP TABLE IF EXISTS hone_neardup; DROP TABLE IF EXISTS hone_rowkeys")
    found.sort(key=lambda f: (_ORDER[f.severity], -f.count))
    return QualityReport(table.name, rows, found, ctx.extras)
