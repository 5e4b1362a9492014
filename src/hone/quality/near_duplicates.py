"""Near-duplicate texts (:mod:`hone.data.neardup`: MinHash/LSH, verified by exact Jaccard), and
split leakage: copies and near copies that would sit in more than one of train/validation/test."""

from __future__ import annotations

from hone.data.neardup import text_key
from hone.data.schema import Schema
from hone.data.sources import Table
from hone.data.split import user_split_expr
from hone.data.sql import qi, qn
from hone.quality.base import Context, Finding, register


@register("near_duplicates")
def near_duplicate_check(table: Table, schema: Schema, ctx: Context) -> list[Finding]:
    if not ctx.near_duplicate_texts(table, schema):
        return []
    texts = [c.name for c in schema.columns if c.role == "text"]
    keys = ctx.row_keys(table, schema)
    table.execute(f"CREATE OR REPLACE TEMP TABLE hone_ndrows AS SELECT rk.__row, nd.__c, nd.__sim FROM {keys} rk "
                  "JOIN hone_neardup nd ON nd.__t = rk.__t")
    try:
        n_rows, n_clusters = table.one("SELECT count(*), count(DISTINCT __c) FROM hone_ndrows")
        top = table.sql("SELECT list(__row ORDER BY __row)[1:5], min(__sim) FROM hone_ndrows GROUP BY __c "
                        "ORDER BY count(*) DESC, min(__row) LIMIT 5").fetchall()
    finally:
        table.con.execute("DROP TABLE IF EXISTS hone_ndrows")
    shown = sorted({r for rows, _ in top for r in rows[:3]})
    text = dict(table.sql(f"SELECT __row, left(CAST(__x AS VARCHAR), 100) FROM (SELECT {qi(texts[0])} AS __x, "
                          f"row_number() OVER () - 1 AS __row FROM {table.view}) WHERE __row IN "
                          f"({', '.join(map(str, shown)) or 'NULL'})").fetchall())
    top = [(rows, [text.get(r) for r in rows[:3]], sim) for rows, sim in top]
    t = ctx.cfg.data.split.near_duplicates or 0.7
    return [Finding("near_duplicates", "warning",
                    f"{n_rows} rows in {n_clusters} clusters have near-duplicate texts (word-bigram Jaccard >= {t:g}, "
                    "not identical after normalisation)", int(n_rows), texts[0],
                    [{"rows": list(r), "texts": list(x), "min_similarity": round(float(s), 3)} for r, x, s in top],
                    remedy="hone's split keeps each cluster in one split; drop the copies if they are reposts")]


@register("split_leakage")
def split_leakage_check(table: Table, schema: Schema, ctx: Context) -> list[Finding]:
    """Rows whose duplicate or near-duplicate group would straddle splits under the split in force:
    the user's split column, a split by group or key (hash of its value), or hone's default (which
    keeps groups together, so the check reports what a random row split would have leaked)."""
    cfg = ctx.cfg.data.split
    f0, f1, _ = cfg.fractions
    tk = text_key(schema)
    if tk:
        ctx.near_duplicate_texts(table, schema)
    by = cfg.group or ctx.cfg.data.key
    if cfg.column:
        assign, how = user_split_expr(table, cfg), f"the split column {cfg.column!r}"
    else:
        u = (
            f"(hash({qi(by)}, {int(cfg.seed)}) % 1000000) / 1e6"
            if by
            else f"(hash(rk.__row, {int(cfg.seed)}) % 1000000) / 1e6"
        )
        assign = f"CASE WHEN {u} < {qn(f0)} THEN 'train' WHEN {u} < {qn(f0 + f1)} THEN 'validation' ELSE 'test' END"
        how = f"a split by {by!r}" if by else "a random row split"
    keys = ctx.row_keys(table, schema)
    source = f"{keys} rk"
    if cfg.column or by:  # the split decided by a column: one narrow pass for it, joined by position
        source += (f" JOIN (SELECT {assign} AS __s, row_number() OVER () - 1 AS __row FROM {table.view}) a "
                   "USING (__row)")
        assign = "a.__s"
    if tk:
        source += " LEFT JOIN hone_neardup __nd ON __nd.__t = rk.__t"
    group = "coalesce(__nd.__c, rk.__k)" if tk else "rk.__k"
    rows = f"SELECT rk.__row AS __row, {group} AS __g, {assign} AS __s FROM {source}"
    table.execute(f"CREATE OR REPLACE TEMP TABLE hone_leak AS {rows}")
    try:
        table.execute("CREATE OR REPLACE TEMP TABLE hone_leakg AS SELECT __g, count(*) AS __n FROM hone_leak "
                      "GROUP BY __g HAVING count(DISTINCT __s) > 1")
        n_rows, n_groups = (int(v or 0) for v in table.one("SELECT sum(__n), count(*) FROM hone_leakg"))
        grouped = int(table.one("SELECT count(*) FROM hone_leak WHERE __g IN "
                                "(SELECT __g FROM hone_leak GROUP BY 1 HAVING count(*) > 1)")[0])
        top = table.sql("SELECT list(__row ORDER BY __row)[1:6], list(DISTINCT __s) FROM hone_leak WHERE __g IN "
                        "(SELECT __g FROM hone_leakg ORDER BY __n DESC, __g LIMIT 5) GROUP BY __g "
                        "ORDER BY count(*) DESC, min(__row)").fetchall()
    finally:
        table.con.execute("DROP TABLE IF EXISTS hone_leak; DROP TABLE IF EXISTS hone_leakg")
    examples = [{"rows": list(r), "splits": sorted(s)} for r, s in top]
    ctx.extras["split_leakage"] = {"split": how, "rows": n_rows, "groups": n_groups, "rows_in_groups": grouped}
    if not n_rows:
        return []
    what = (f"{n_rows} rows in {n_groups} groups of duplicates or near duplicates would fall into more than one of "
            f"train/validation/test under {how}")
    if not (cfg.column or by):
        return [Finding("split_leakage", "info", what + "; hone's split keeps each group in one split, so its "
                        "test score is not inflated by them", n_rows, examples=examples,
                        remedy="none needed with hone's split; with another tool, split by these groups")]
    return [Finding("split_leakage", "error" if cfg.column else "warning", what + ": the test score would be "
                    "inflated by copies of training rows", n_rows, examples=examples,
                    remedy="drop the copies, or let hone split (no split column): it groups duplicates")]
