"""Streaming prediction to files: many batches, row order, and nothing left behind on failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hone
from hone.errors import DataError
from hone.predict import predict_file


@pytest.fixture(scope="module")
def tab_model(tmp_path_factory, tab_table: pa.Table):
    out = tmp_path_factory.mktemp("tab") / "run"
    return hone.fit(tab_table, target="label", output=out, show_progress=False)


def test_tabular_model_streams_many_batches_in_order(tmp_path: Path, tab_model, tab_table: pa.Table) -> None:
    assert tab_model.metrics["network"]["macro_f1"] > 0.8
    src = tmp_path / "in.parquet"
    pq.write_table(tab_table, src, row_group_size=50)
    n = predict_file(tab_model, src, tmp_path / "out.parquet", batch_rows=64)
    out = pq.read_table(tmp_path / "out.parquet")
    assert n == out.num_rows == tab_table.num_rows
    assert out.column("id").to_pylist() == tab_table.column("id").to_pylist()
    expected = tab_model.predict_proba(tab_table)
    got = np.stack([out.column(f"proba_{c}").to_numpy() for c in tab_model.classes], 1)
    assert np.allclose(got, expected, atol=1e-6)


def test_failed_prediction_leaves_no_file(tmp_path: Path, tab_model, tab_table: pa.Table) -> None:
    with pytest.raises(DataError, match=r"column 'price' \(a feature the model was trained on\) not found"):
        predict_file(tab_model, tab_table.drop_columns(["price"]), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match=r"must end in .parquet, .csv or .tsv"):
        predict_file(tab_model, tab_table, tmp_path / "out.xlsx")
