"""Exact duplicates: rows repeated whole, and rows whose features are identical but whose labels
differ. Rows count as duplicates exactly when they get the same split key (the hash of the feature
values, :func:`hone.data.split.feature_key`), so the audit and the split share one definition."""

from __future__ import annotations

from hone.data.schema import Schema
from hone.data.sources import Table
from hone.quality.base import Context, Finding, register


@register("duplicates")
def duplicate_checks(table: Table, schema: Schema, ctx: Context) -> list[Finding]:
    keys = ctx.row_keys(table, schema)
    try:
        groups = (f"SELECT __k, count(*) AS __n, count(DISTINCT __y) AS __labels FROM {keys} "
                  "GROUP BY 1 HAVING count(*) > 1")
        table.execute(f"CREATE OR REPLACE TEMP TABLE hone_dupgroups AS {groups}")
        extra, clusters, conflicting, conflict_groups = (int(v or 0) for v in table.one(
            "SELECT sum(__n - 1) FILTER (WHERE __labels = 1), count(*) FILTER (WHERE __labels = 1), "
            "sum(__n) FILTER (WHERE __labels > 1), count(*) FILTER (WHERE __labels > 1) FROM hone_dupgroups"))

        def examples(conflict: bool) -> list[tuple[list[int], list[str]]]:
            top = (f"SELECT __k FROM hone_dupgroups WHERE __labels {'>' if conflict else '='} 1 "
                   "ORDER BY __n DESC, __k LIMIT 5")
            return [(list(r), list(v)) for r, v in table.sql(
                f"SELECT list(__row ORDER BY __row)[1:5], list(DISTINCT __y) FROM {keys} "
                f"WHERE __k IN ({top}) GROUP BY __k ORDER BY count(*) DESC, __k").fetchall()]

        out = []
        if extra:
            out.append(Finding("exact_duplicates", "warning", f"{extra} rows repeat another row's features and label "
                               f"({clusters} groups; text compared without case, spacing or punctuation); they "
                               "always share a split", extra,
                               examples=[{"rows": r, "label": v[0]} for r, v in examples(False)],
                               remedy="drop the repeats (--clean): they over-weight those rows"))
        if conflicting:
            out.append(Finding("conflicting_labels", "error", f"{conflicting} rows in {conflict_groups} groups have "
                               "identical features but different labels", conflicting,
                               examples=[{"rows": r, "labels": sorted(v)} for r, v in examples(True)],
                               remedy="fix the labels, or drop the groups (--clean): no model can fit both"))
        return out
    finally:
        table.con.execute("DROP TABLE IF EXISTS hone_dupgroups")
