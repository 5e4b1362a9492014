"""Streaming prediction to files: many batches, row order, and nothing left behind on failure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hone
from hone.errors import DataError
from hone.scoring import predict_file


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


def test_the_written_prediction_applies_the_threshold_chosen_on_validation(tmp_path: Path, tab_table: pa.Table) -> None:
    # Regression: the file's prediction was the argmax of the probabilities, not the model's decision
    # rule, so `hone predict` disagreed with `hone evaluate` and metrics.json on every thresholded model.
    model = hone.fit(tab_table, target="label", output=tmp_path / "run", show_progress=False, label_errors=False,
                     threshold_objective="recall_at_precision:0.6", **{"evaluate.bootstrap": 0})
    threshold = model.decision.threshold["threshold"]
    proba = model.predict_proba(tab_table)
    pos = 1  # a binary threshold applies to the second class's probability
    assert ((proba[:, pos] >= threshold) != (proba.argmax(1) == pos)).any()  # the rule changes some labels
    predict_file(model, tab_table, tmp_path / "out.parquet")
    written = pq.read_table(tmp_path / "out.parquet").column("prediction").to_pylist()
    assert written == list(model.predict(tab_table))
