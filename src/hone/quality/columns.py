"""Per-column checks: missing values, constant and ID-like columns, values of the wrong type,
numeric outliers (robust z-score: |x - median| / (1.4826 * MAD) > 5); and the column profile
(type, role, missing rate, approximate distinct count) in ``audit.json``'s ``columns``."""

from __future__ import annotations

from typing import Any

from hone.data.schema import Schema, is_numeric_type
from hone.data.sources import Table
from hone.data.sql import qi, qn, try_cast
from hone.quality.base import Context, Finding, Severity, numbered, register

_Z = 5.0
_PER_QUERY = 128  # columns a query aggregates at once


@register("columns")
def column_checks(table: Table, schema: Schema, ctx: Context) -> list[Finding]:
    out: list[Finding] = []
    n = int(table.one(f"SELECT count(*) FROM {table.view}")[0])
    names = [c for c in table.columns if c != schema.target]
    row: tuple[Any, ...] = ()
    for start in range(0, len(names), _PER_QUERY):  # a wide table: a few columns' sketches at a time (bounded memory)
        parts = ", ".join(f"count({qi(c)}), approx_count_distinct({qi(c)})" for c in names[start:start + _PER_QUERY])
        row += table.one(f"SELECT {parts} FROM {table.view}")
    roles = {spec.name: spec.role for spec in schema.columns}
    profile = ctx.extras.setdefault("columns", [])
    for i, c in enumerate(names):
        present, distinct = int(row[2 * i] or 0), int(row[2 * i + 1] or 0)
        missing = n - present
        profile.append({"column": c, "type": table.dtype(c), "role": roles.get(c, "dropped"),
                        "missing_rate": round(missing / max(n, 1), 4), "distinct": distinct,
                        "why_dropped": schema.dropped.get(c)})
        if missing:
            sev: Severity = "warning" if missing / max(n, 1) > 0.5 else "info"
            out.append(Finding("missing_values", sev, f"{missing} of {n} values of {c!r} are missing "
                               f"({100 * missing / max(n, 1):.1f}%)", missing, c,
                               remedy="none needed: missing values are flagged and imputed by hone"))
        if c in schema.dropped:
            out.append(Finding("dropped_column", "info", f"{c!r} is not used as a feature: {schema.dropped[c]}",
                               0, c, [{"distinct": distinct}]))
    for c, k in schema.coerced.items():
        dtype = next(s.dtype for s in schema.columns if s.name == c)
        ex = table.sql(
            f"SELECT __row, CAST({qi(c)} AS VARCHAR) FROM {numbered(table, [c], raw=True)} WHERE {qi(c)} IS NOT NULL "
            f"AND {try_cast(f'CAST({qi(c)} AS VARCHAR)', dtype, keep_nonfinite=True)} IS NULL ORDER BY __row LIMIT 5"
        ).fetchall()
        out.append(Finding("wrong_type", "warning", f"{k} values of {c!r} are not numbers (or dates) and are read as "
                           "missing", k, c, [{"row": int(r), "value": v} for r, v in ex],
                           remedy="fix the values at the source, or leave them: they are treated as missing"))
    for c, k in schema.nonfinite.items():
        is_target = c == schema.target
        value = try_cast(qi(c), "DOUBLE", "VARCHAR" if c in table.tolerant else table.dtype(c), keep_nonfinite=True)
        ex = table.sql(f"SELECT __row, CAST({qi(c)} AS VARCHAR) FROM {numbered(table, [c], raw=True)} WHERE "
                       f"NOT isfinite({value}) ORDER BY __row LIMIT 5").fetchall()
        out.append(Finding("non_finite", "warning", f"{k} values of {c!r} are NaN or infinite: "
                           + ("those rows have no target and are dropped from training" if is_target
                              else "they are read as missing"), k, c, [{"row": int(r), "value": v} for r, v in ex],
                           remedy="fix them at the source, or leave them: " + (
                               "the rows are dropped" if is_target else "they are treated as missing")))
    numeric = [s for s in schema.columns if s.role == "numeric" and is_numeric_type(s.dtype)]
    for start in range(0, len(numeric), _PER_QUERY):  # a few queries for many columns: a wide view binds slowly
        out += _outliers(table, numeric[start:start + _PER_QUERY])
    return out


def _outliers(table: Table, specs: list[Any]) -> list[Finding]:
    """Numeric values more than ``_Z`` robust standard deviations from their column's median."""
    out: list[Finding] = []
    qs = [try_cast(qi(s.name), "DOUBLE", table.dtype(s.name)) for s in specs]
    meds = table.one(f"SELECT {', '.join(f'median({q})' for q in qs)} FROM {table.view}")
    live = [(s, q, float(m)) for s, q, m in zip(specs, qs, meds) if m is not None]
    if not live:
        return out
    mads = table.one(f"SELECT {', '.join(f'median(abs({q} - {qn(m)}))' for _, q, m in live)} FROM {table.view}")
    zs = [(s, q, m, f"abs({q} - {qn(m)}) / ({qn(1.4826 * float(mad))})") for (s, q, m), mad in zip(live, mads) if mad]
    if not zs:
        return out
    counts = table.one(f"SELECT {', '.join(f'count_if({z} > {qn(_Z)})' for *_, z in zs)} FROM {table.view}")
    for (spec, q, med, z), k in zip(zs, counts):
        if not k:
            continue
        ex = table.sql(f"SELECT __row, {q}, {z} FROM {numbered(table, [spec.name])} WHERE {z} > {qn(_Z)} "
                       "ORDER BY 3 DESC LIMIT 5").fetchall()
        out.append(Finding("outliers", "info", f"{k} values of {spec.name!r} lie more than {_Z:g} robust "
                           f"standard deviations from its median ({med:g})", int(k), spec.name,
                           [{"row": int(r), "value": v, "robust_z": round(float(zz), 1)} for r, v, zz in ex],
                           remedy="check them; standardisation keeps them, trees are not affected"))
    return out
