"""Federated preprocessing: the schema, the label set and every statistic of the preprocessing, agreed
by the server from the silos' summaries (counts and sums; :meth:`hone.federated.local.SiloClient.summary`),
and the wire format of those summaries: numbers in Flower ``MetricRecord``s, names in ``ConfigRecord``s."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hone.config import ModelConfig
from hone.data.schema import ColumnSpec, Schema
from hone.errors import DataError
from hone.features.pipeline import Preprocessor


def agree_schema(summaries: list[dict[str, Any]], names: list[str]) -> Schema:
    """The federation's schema from the silos' descriptions (:func:`merge_schemas`)."""
    return merge_schemas([s["schema"] for s in summaries], [s["labels"] for s in summaries], names)


def merge(schema: Schema, summaries: list[dict[str, Any]], cfg: ModelConfig) -> tuple[Preprocessor, dict[str, Any]]:
    """The federation's preprocessor from every silo's :meth:`~hone.federated.local.SiloClient.summary` for
    the agreed ``schema``, and what every client resolves its config from (``pooled``: the task, the
    pooled training rows per class and the rows per split)."""
    counts = [sum(int(s["labels"]["counts"][i]) for s in summaries) for i in range(len(schema.classes))]
    class_counts = {str(c): n for c, n in zip(schema.classes, counts)}
    pre = Preprocessor.from_stats(schema, [s["stats"] for s in summaries], cfg=cfg, class_counts=class_counts)
    pooled = {"task": schema.task, "has_text": bool(schema.names("text")), "has_image": bool(schema.names("image")),
              "class_counts": counts, "train_rows": sum(int(s["rows"].get("train", 0)) for s in summaries),
              "rows": {k: sum(int(s["rows"].get(k, 0)) for s in summaries) for k in ("train", "validation", "test")}}
    return pre, pooled


def merge_schemas(schemas: list[dict[str, Any]], labels: list[dict[str, Any]], names: list[str]) -> Schema:
    """One schema for every silo: the same target and columns; a column's role is the one most silos
    inferred (on a tie, the first silo's); the label set is the union of the silos' labels."""
    first = schemas[0]
    for s, name in zip(schemas, names):
        if s["target"] != first["target"]:
            raise DataError(f"{name} predicts {s['target']!r}, {names[0]} {first['target']!r}: every silo must "
                            "have the same target")
        if (s["task"] == "regression") != (first["task"] == "regression"):
            raise DataError(f"the target {first['target']!r} is numbers to predict (regression) in "
                            f"{names[[x['task'] for x in schemas].index('regression')]} and labels in another: "
                            "pass the same --task to every client")
    columns: list[str] = []  # a column any silo uses as a feature; one a silo dropped (constant there...) stays
    for s in schemas:
        columns += [c["name"] for c in s["columns"] if c["name"] not in columns]
    for s, name in zip(schemas, names):
        held = {c["name"] for c in s["columns"]} | set(s.get("dropped", []))
        missing = [c for c in columns if c not in held]
        if missing:
            raise DataError(f"{name} has no column {missing[0]!r}, which other silos hold: every silo must hold "
                            "the same columns")
    specs = []
    for col in columns:
        seen = [c for s in schemas for c in s["columns"] if c["name"] == col]
        roles = Counter(c["role"] for c in seen)
        top = max(roles.values())
        role = next(c["role"] for c in seen if roles[c["role"]] == top)
        dtype = next(c["dtype"] for c in seen if c["role"] == role)
        specs.append(ColumnSpec(col, role, dtype, "agreed by the silos" if len(roles) > 1 else "inferred"))
    task, classes = first["task"], []
    if task != "regression":
        values = {json.dumps(json.loads(v), sort_keys=True): json.loads(v) for lab in labels for v in lab["values"]}
        classes = sorted(values.values(), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise DataError(f"target {first['target']!r} has one class ({classes[0]!r}) across all silos; "
                            "classification needs at least 2")
        task = "binary" if len(classes) == 2 else "multiclass"
    return Schema(first["target"], task, specs, classes=classes, target_dtype=first.get("target_dtype", ""))


# -- the wire format ------------------------------------------------------------------------------
def to_records(tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A nested summary as two flat dicts keyed by the JSON path of each leaf: numbers (and lists of
    numbers) for a ``MetricRecord``, strings (and lists of strings) for a ``ConfigRecord``."""
    numbers: dict[str, Any] = {}
    names: dict[str, Any] = {}

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, [*path, k])
        elif isinstance(node, list) and node and isinstance(node[0], dict):
            for i, v in enumerate(node):
                walk(v, [*path, i])
        else:
            key = json.dumps(path)
            is_text = isinstance(node, str) or (isinstance(node, list) and node and isinstance(node[0], str))
            if is_text:
                names[key] = node
            elif isinstance(node, list):
                numbers[key] = [float(x) if isinstance(x, float) else int(x) for x in node]
                if not node:
                    names[key] = []  # an empty list: its type is unknown, and it carries nothing
                    del numbers[key]
            elif isinstance(node, bool):
                numbers[key] = int(node)
            else:
                numbers[key] = node

    walk(tree, [])
    return numbers, names


def from_records(*records: dict[str, Any]) -> dict[str, Any]:
    """The nested summary back from :func:`to_records`'s flat dicts."""
    root: dict[Any, Any] = {}
    for rec in records:
        for key, value in rec.items():
            path = json.loads(key)
            node = root
            for p in path[:-1]:
                node = node.setdefault(p, {})
            node[path[-1]] = list(value) if isinstance(value, list) else value
    return _lists(root)


def _lists(node: Any) -> Any:
    """Dicts keyed 0..n-1 (lists of dicts on the wire) back to lists."""
    if not isinstance(node, dict):
        return node
    out = {k: _lists(v) for k, v in node.items()}
    if out and all(isinstance(k, int) for k in out):
        return [out[i] for i in range(len(out))]
    return out
