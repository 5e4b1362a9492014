"""Exact duplicates: rows repeated whole, and rows whose features are identical but whose labels
differ. Rows count as duplicates exactly when they get the same split key (the hash of the feature
values, :func:`hone.data.split.feature_key`), so the audit and the split share one definition."""

from __future__ import annotations

from hone.data.schema import Schema
from hone.data.sources import Table
from hone.data.split import feature_key
from hone.data.sql import qi
from hone.quality.base import Finding, numbered, register


@register("duplicates")
def duplicate_checks(table: Table, schema: Schema) -> list[Finding]:
    key = feature_key(schema)
    tgt = qi(schema.target)
    groups = (f"SELECT {key} AS __k, count(*) AS __n, count(DISTINCT {tgt}) AS __labels, "
              f"list(__row ORDER BY __row) AS __rows, list(DISTINCT CAST({tgt} AS VARCHAR)) AS __values "
              f"FROM {numbered(table)} WHERE {tgt} IS NOT NULL GROUP BY 1 HAVING count(*) > 1")
    rows = table.sql(f"SELECT sum(__n - 1) FILTER (WHERE __labels = 1), count(*) FILTER (WHERE __labels = 1), "
                     f"sum(__n) FILTER (WHERE __labels > 1), count(*) FILTER (WHERE __labels > 1) FROM ({groups})").fetchall()
    extra, clusters, conflicting, conflict_groups = (int(v or 0) for v in rows[0])
    out = []
    if extra:
        ex = table.sql(f"SELECT __rows[1:5], __values FROM ({groups}) WHERE __labels = 1 ORDER BY __n DESC LIMIT 5").fetchall()
        out.append(Finding("exact_duplicates", "warning", f"{extra} rows repeat another row's features and label "
                           f"({clusters} groups; text compared without case, spacing or punctuation); they always share a split",
                           extra,
                           examples=[{"rows": list(r), "label": v[0]} for r, v in ex],
                           remedy="drop the repeats (--clean): they over-weight those rows"))
    if conflicting:
        ex = table.sql(f"SELECT __rows[1:5], __values FROM ({groups}) WHERE __labels > 1 ORDER BY __n DESC LIMIT 5").fetchall()
        out.append(Finding("conflicting_labels", "error", f"{conflicting} rows in {conflict_groups} groups have "
                           "identical features but different labels", conflicting,
                           examples=[{"rows": list(r), "labels": list(v)} for r, v in ex],
                           remedy="fix the labels, or drop the groups (--clean): no model can fit both"))
    return out
