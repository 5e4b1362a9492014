"""Federated preprocessing: the silos' counts and sums give the pooled statistics (no Flower needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hone.config import ModelConfig
from hone.data.schema import ColumnSpec, Schema
from hone.data.sources import connect
from hone.errors import DataError
from hone.features.numeric import pooled_moments
from hone.features.pipeline import Preprocessor
from hone.federated.metrics import from_confusion, from_sums
from hone.federated.stats import from_records, merge_schemas, to_records

SCHEMA = Schema("label", "binary", [ColumnSpec("price", "numeric", "DOUBLE"), ColumnSpec("when", "datetime", "DATE"),
                                    ColumnSpec("store", "categorical", "VARCHAR")], classes=["neg", "pos"])


def _parts(table: pa.Table, tmp_path: Path, cuts: list[int]) -> tuple[list[Path], Path]:
    paths, start = [], 0
    for i, end in enumerate([*cuts, table.num_rows]):
        p = tmp_path / f"silo{i}.parquet"
        pq.write_table(table.slice(start, end - start), p)
        paths.append(p)
        start = end
    pooled = tmp_path / "pooled.parquet"
    pq.write_table(table, pooled)
    return paths, pooled


def test_numeric_statistics_pool_exactly(tmp_path: Path, tab_table: pa.Table) -> None:
    """Means, standard deviations and missing rates from per-silo (n, sum, m2) equal a fit on the pooled rows."""
    paths, pooled = _parts(tab_table, tmp_path, [37, 300])  # unequal silos
    con = connect(tmp_path)
    cfg = ModelConfig()
    stats = [Preprocessor.local_stats(SCHEMA, p, con=con, cfg=cfg) for p in paths]
    fed = Preprocessor.from_stats(SCHEMA, stats, cfg=cfg).modalities["numeric"]
    central = Preprocessor.fit(SCHEMA, pooled, con=con, cfg=cfg).modalities["numeric"]
    assert [(f.column, f.part) for f in fed.features] == [(f.column, f.part) for f in central.features]
    for a, b in zip(fed.features, central.features):
        assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-9)
        assert a.std == pytest.approx(b.std, rel=1e-9)
        assert a.missing_rate == pytest.approx(b.missing_rate, abs=1e-12)
    assert any(f.missing_rate > 0 for f in fed.features)  # price has missing values: the rate is tested


def test_regression_target_scaling_pools_exactly(tmp_path: Path, tab_table: pa.Table) -> None:
    schema = Schema("price", "regression", [ColumnSpec("store", "categorical", "VARCHAR")])
    paths, pooled = _parts(tab_table.filter(pa.compute.is_valid(tab_table["price"])), tmp_path, [100])
    con = connect(tmp_path)
    stats = [Preprocessor.local_stats(schema, p, con=con, cfg=ModelConfig()) for p in paths]
    fed = Preprocessor.from_stats(schema, stats, cfg=ModelConfig())
    central = Preprocessor.fit(schema, pooled, con=con, cfg=ModelConfig())
    assert (fed.target_mean, fed.target_std) == pytest.approx((central.target_mean, central.target_std), rel=1e-9)


def test_pooled_moments_is_stable() -> None:
    rng = np.random.default_rng(0)
    x = 1e9 + rng.normal(0, 1, 10_000)  # a large offset: sum of squares minus square of sum would cancel
    parts = [x[:10], x[10:4000], x[4000:]]
    n, mean, m2 = pooled_moments([(len(p), float(p.sum()), float(((p - p.mean()) ** 2).sum())) for p in parts])
    assert n == len(x) and mean == pytest.approx(x.mean(), rel=1e-15) and m2 / n == pytest.approx(x.var(), rel=1e-9)


def test_categories_rarer_than_the_minimum_in_every_silo_stay_there(tmp_path: Path) -> None:
    """A value held by ``min_category_count`` rows of some silo is shared; one below it in every silo
    never leaves them (a central fit, which sees 3 rows of "c", keeps it)."""
    stores = ["a"] * 6 + ["b"] * 3 + ["c"] * 2 + ["a"] * 5 + ["b"] * 3 + ["c"] * 1 + ["d"] * 9
    table = pa.table({"store": stores, "label": (["pos", "neg"] * len(stores))[: len(stores)]})
    schema = Schema("label", "binary", [ColumnSpec("store", "categorical", "VARCHAR")], classes=["neg", "pos"])
    paths, pooled = _parts(table, tmp_path, [11])
    con = connect(tmp_path)
    cfg = ModelConfig(min_category_count=3)
    stats = [Preprocessor.local_stats(schema, p, con=con, cfg=cfg) for p in paths]
    shared = {v for s in stats for v in s["modalities"]["categorical"]["store"]["values"]}
    assert shared == {"a", "b", "d"}
    fed = Preprocessor.from_stats(schema, stats, cfg=cfg).modalities["categorical"].features[0].vocab
    central = Preprocessor.fit(schema, pooled, con=con, cfg=cfg).modalities["categorical"].features[0].vocab
    assert fed == ["a", "d", "b"]  # by pooled count: a 11, d 9, b 6
    assert central == ["a", "d", "b", "c"]


def test_wire_format_round_trips_and_separates_numbers_from_names(tmp_path: Path, tab_table: pa.Table) -> None:
    paths, _ = _parts(tab_table, tmp_path, [200])
    stats = Preprocessor.local_stats(SCHEMA, paths[0], con=connect(tmp_path), cfg=ModelConfig())
    summary = {"labels": {"values": [json.dumps("neg"), json.dumps("pos")], "counts": [90, 110]}, "stats": stats}
    numbers, names = to_records(summary)
    assert all(isinstance(v, (int, float)) or (isinstance(v, list) and all(isinstance(x, (int, float)) for x in v))
               for v in numbers.values())
    assert all(isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
               for v in names.values())
    assert from_records(numbers, names) == summary


def test_schemas_merge_by_majority_and_labels_by_union() -> None:
    def schema(role: str) -> dict:
        return {"target": "y", "task": "binary", "target_dtype": "VARCHAR",
                "columns": [{"name": "x", "role": role, "dtype": "BIGINT"}]}

    labels = [{"values": [json.dumps("a"), json.dumps("b")]}, {"values": [json.dumps("c")]},
              {"values": [json.dumps("a")]}]
    merged = merge_schemas([schema("numeric"), schema("categorical"), schema("numeric")], labels, ["s0", "s1", "s2"])
    assert merged.columns[0].role == "numeric"
    assert merged.classes == ["a", "b", "c"] and merged.task == "multiclass"  # silo s1 alone holds "c"
    # a column one silo dropped (constant there) is still a feature where another silo uses it
    dropped = {**schema("numeric"), "columns": [], "dropped": ["x"]}
    assert merge_schemas([dropped, schema("categorical")], labels[:2], ["s0", "s1"]).columns[0].role == "categorical"
    other = {**schema("numeric"), "columns": [{"name": "z", "role": "numeric", "dtype": "BIGINT"}]}
    with pytest.raises(DataError, match="s0 has no column 'z'"):
        merge_schemas([schema("numeric"), other], labels[:2], ["s0", "s1"])


def test_metrics_from_aggregates_match_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score, r2_score

    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 4, 500), rng.integers(0, 3, 500)  # class 3 is never predicted
    c = np.zeros((4, 4), dtype=np.int64)
    np.add.at(c, (y, p), 1)
    m = from_confusion(c, 12.5)
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p)) and m["log_loss"] == 12.5 / 500
    t, pred = rng.normal(size=300), rng.normal(size=300)
    r = from_sums(
        300, float(((t - pred) ** 2).sum()), float(np.abs(t - pred).sum()), float(t.sum()), float((t**2).sum())
    )
    assert r["r2"] == pytest.approx(r2_score(t, pred)) and r["mae"] == pytest.approx(np.abs(t - pred).mean())
