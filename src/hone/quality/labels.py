"""Label hygiene: values that differ only by case, spaces or punctuation, rare classes, imbalance."""

from __future__ import annotations

import re
from collections import defaultdict

from hone.data.schema import Schema
from hone.data.sources import Table
from hone.data.sql import qi
from hone.quality.base import Context, Finding, Severity, register


def normalise(label: str) -> str:
    """The form under which label variants collide: lower case, no spaces or punctuation.

    Example:
        >>> normalise(" Positive! "), normalise("positive")
        ('positive', 'positive')
    """
    return re.sub(r"[\W_]+", "", str(label).strip().lower())


def label_merges(counts: dict[str, int]) -> dict[str, str]:
    """Each minority spelling of a label -> the most frequent spelling of its group.

    Example:
        >>> label_merges({"positive": 9, "Positive ": 2, "negative": 5})
        {'Positive ': 'positive'}
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for value in counts:
        groups[normalise(value)].append(value)
    merges = {}
    for vs in groups.values():
        keep = max(vs, key=lambda x: (counts[x], x))
        merges.update({v: keep for v in vs if v != keep})
    return merges


@register("labels")
def label_checks(table: Table, schema: Schema, ctx: Context) -> list[Finding]:
    if schema.task == "regression":
        return []
    tgt = qi(schema.target)
    counts = dict(table.sql(f"SELECT CAST({tgt} AS VARCHAR), count(*) FROM {table.view} WHERE {tgt} IS NOT NULL "
                            "GROUP BY 1").fetchall())
    out = []
    merges = label_merges(counts)
    variants = [[keep] + [v for v, k in merges.items() if k == keep] for keep in dict.fromkeys(merges.values())]
    if variants:
        n = sum(counts[v] for v in merges)
        out.append(Finding("label_variants", "error", f"{len(variants)} labels are written in several ways "
                           f"({n} rows use a minority spelling)", n, schema.target,
                           [{"variants": {x: counts[x] for x in v}, "merge_into": v[0]} for v in variants[:5]],
                           remedy="merge each group into its most frequent spelling (--clean)"))
    total = sum(counts.values())
    rare = {k: v for k, v in counts.items() if v < max(10, 0.005 * total)}
    if rare:
        out.append(Finding("rare_classes", "warning", f"{len(rare)} classes have very few rows: "
                           + ", ".join(f"{k!r} ({v})" for k, v in list(rare.items())[:5]), sum(rare.values()),
                           schema.target, [{"label": k, "rows": v} for k, v in rare.items()],
                           remedy="collect more rows, merge them with a related class, or drop them"))
    if len(counts) >= 2:
        ratio = max(counts.values()) / min(counts.values())
        if ratio >= 1.5:
            sev: Severity = "warning" if ratio >= 10 else "info"
            out.append(Finding("class_imbalance", sev, f"the largest class has {ratio:.1f}x the rows of the smallest",
                               total, schema.target, [{"label": k, "rows": v} for k, v in sorted(counts.items())],
                               remedy="hone weights the classes and chooses the decision threshold on validation"))
    return out
