"""The audit's safe remedies, applied as a view over the source (never a change to it):
label variants merged into their most frequent spelling, exact duplicates dropped (the first copy
kept), and groups of identical features with conflicting labels dropped. What was removed is
recorded row by row."""

from __future__ import annotations

from typing import Any

from hone.data.schema import Schema
from hone.data.sources import Table
from hone.data.split import feature_key
from hone.data.sql import qi, ql
from hone.quality.labels import label_merges

_LISTED = 10_000  # rows listed by position in the record (all are counted)


def clean_table(table: Table, schema: Schema, view: str = "source_clean", *,
                label_errors: list[dict[str, Any]] | None = None) -> tuple[Table, dict[str, Any]]:
    """Create ``view`` (the cleaned rows, same columns) and return it as a Table, with the record.

    ``label_errors`` (the audit's flagged rows: ``row`` positions) are dropped first, so a duplicate
    group whose only conflict was a mislabelled copy keeps its correct rows."""
    tgt = qi(schema.target)
    merges: dict[str, str] = {}
    label = tgt
    if schema.task != "regression":
        counts = dict(table.sql(f"SELECT CAST({tgt} AS VARCHAR), count(*) FROM {table.view} WHERE {tgt} IS NOT NULL "
                                "GROUP BY 1").fetchall())
        merges = label_merges(counts)
        if merges and table.dtype(schema.target).upper() == "VARCHAR":
            cases = " ".join(f"WHEN {ql(k)} THEN {ql(v)}" for k, v in merges.items())
            label = f"CASE {tgt} {cases} ELSE {tgt} END"
        else:
            merges = {}
    numbered = (f"SELECT * REPLACE ({label} AS {tgt}), row_number() OVER () - 1 AS __row FROM {table.view}")
    wrong = sorted({int(e["row"]) for e in label_errors or []})
    table.execute("CREATE OR REPLACE TEMP TABLE hone_wrong (__row BIGINT)")
    if wrong:
        table.con.execute("INSERT INTO hone_wrong SELECT unnest(?::BIGINT[])", [wrong])
        numbered = f"SELECT * FROM ({numbered}) WHERE __row NOT IN (SELECT __row FROM hone_wrong)"
    keyed = f"SELECT *, {feature_key(schema)} AS __k FROM ({numbered})"
    marked = (f"SELECT *, count(DISTINCT {tgt}) OVER (PARTITION BY __k) AS __labels, "
              f"row_number() OVER (PARTITION BY __k, {tgt} ORDER BY __row) AS __copy FROM ({keyed})")
    table.execute(f"CREATE OR REPLACE TEMP TABLE hone_marked AS {marked}")
    dup = [int(r[0]) for r in table.sql(f"SELECT __row FROM hone_marked WHERE {tgt} IS NOT NULL AND __labels = 1 "
                                        f"AND __copy > 1 ORDER BY 1").fetchall()]
    conflict = [int(r[0]) for r in table.sql(f"SELECT __row FROM hone_marked WHERE {tgt} IS NOT NULL AND __labels > 1 "
                                             "ORDER BY 1").fetchall()]
    cols = ", ".join(qi(c) for c in table.columns)
    table.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {cols} FROM hone_marked WHERE "
                  f"{tgt} IS NULL OR (__labels = 1 AND __copy = 1) ORDER BY __row")
    record = {"label_merges": merges, "dropped_duplicates": len(dup), "dropped_conflicting": len(conflict),
              "dropped_label_errors": len(wrong),
              "dropped_rows": {"duplicates": dup[:_LISTED], "conflicting_labels": conflict[:_LISTED],
                               "label_errors": wrong[:_LISTED]},
              "rows_are": "0-based positions in the source as read", "source_changed": False}
    cleaned = Table(con=table.con, view=view, name=table.name, columns=table.columns, types=table.types,
                    raw_view=view, tolerant={}, csv_paths=table.csv_paths, encoding=table.encoding)
    return cleaned, record
