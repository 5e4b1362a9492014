from __future__ import annotations

import pyarrow as pa
import pytest

from hone.data.schema import Schema, infer_schema
from hone.data.sources import connect, open_table
from hone.errors import DataError, SchemaError


def _schema(tbl: pa.Table, target: str = "label", **kw):
    return infer_schema(open_table(tbl, connect()), target=target, **kw)


def test_roles_are_inferred(table: pa.Table) -> None:
    s = _schema(table)
    roles = {c.name: c.role for c in s.columns}
    assert roles == {"review": "text", "title": "text", "price": "numeric", "store": "categorical",
                     "member": "boolean", "when": "datetime"}
    assert s.dropped["id"].startswith("ID-like") and s.dropped["constant"] == "constant"
    assert s.task == "binary" and s.classes == ["neg", "pos"]


def test_overrides_win(table: pa.Table) -> None:
    s = _schema(table, overrides={"categorical": ["title"], "ignore": ["price"], "numeric": ["id"]})
    roles = {c.name: c.role for c in s.columns}
    assert roles["title"] == "categorical" and roles["id"] == "numeric" and "price" not in roles
    assert s.dropped["price"] == "ignored by --ignore"


def test_task_inference_and_override() -> None:
    base = {"x": [float(i % 7) for i in range(60)]}
    assert _schema(pa.table({**base, "y": [i % 3 for i in range(60)]}), "y").task == "multiclass"
    assert _schema(pa.table({**base, "y": [i * 0.37 for i in range(60)]}), "y").task == "regression"
    assert _schema(pa.table({**base, "y": [i % 3 for i in range(60)]}), "y", task="regression").task == "regression"
    assert _schema(pa.table({**base, "y": [i % 2 == 0 for i in range(60)]}), "y").classes == [False, True]


def test_schema_round_trips_and_is_idempotent(table: pa.Table) -> None:
    s = _schema(table)
    assert Schema.from_dict(s.to_dict()) == s
    assert _schema(table) == s
    assert "review" in str(s) and "dropped" in str(s)


def test_target_errors(table: pa.Table) -> None:
    with pytest.raises(DataError, match=r"column 'labl' \(--target\) not found .* Did you mean 'label'\?"):
        _schema(table, target="labl")
    with pytest.raises(DataError, match=r"target 'y' has one class \('a'\)"):
        _schema(pa.table({"x": [1.0, 2.0, 3.0], "y": ["a", "a", "a"]}), "y")
    with pytest.raises(DataError, match=r"must be numeric for regression, but 1 values are not numbers, e.g. 'n/a'"):
        _schema(pa.table({"x": [1.0, 2.0, 3.0], "y": ["1.5", "n/a", "2"]}), "y", task="regression")
    with pytest.raises(SchemaError, match="no usable feature columns"):
        _schema(pa.table({"c": ["k"] * 5, "y": ["a", "b", "a", "b", "a"]}), "y")
    with pytest.raises(DataError, match=r"column 'nope' \(--text\) not found"):
        _schema(table, overrides={"text": ["nope"]})


def test_distinct_titles_are_short_text_and_single_tokens_are_ids() -> None:
    # Regression: film titles (unique, ~3 words, ~17 characters) were dropped as ID-like.
    words = ["star", "night", "return", "the", "of", "city", "love", "war", "last", "blue", "dark", "house"]
    titles = [f"{words[i % 12].title()} {words[(i // 12) % 12]} {i}" for i in range(200)]
    tbl = pa.table({"title": titles, "sku": [f"SKU{i:06d}" for i in range(200)], "label": [i % 2 for i in range(200)]})
    s = _schema(tbl)
    assert {c.name: c.role for c in s.columns} == {"title": "text"}
    assert "short free text" in s.columns[0].reason and s.dropped["sku"].startswith("ID-like")
