from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hone.config import ModelConfig
from hone.data.schema import infer_schema
from hone.data.sources import connect, open_table
from hone.features.pipeline import Preprocessor
from hone.models.baseline import Baseline, fit_baseline


def _setup(tbl: pa.Table, tmp: Path, backbone: Path | None = None, target: str = "label"):
    schema = infer_schema(open_table(tbl, connect()), target=target)
    n = tbl.num_rows
    pq.write_table(tbl.slice(0, int(n * 0.7)), tmp / "train.parquet")
    pq.write_table(tbl.slice(int(n * 0.7)), tmp / "valid.parquet")
    cfg = ModelConfig(backbone=str(backbone) if backbone else "auto", max_length=32, min_category_count=1)
    return Preprocessor.fit(schema, tmp / "train.parquet", con=connect(), cfg=cfg)


@pytest.mark.parametrize("kind", ["tabular", "mixed", "text", "regression"])
def test_baseline_learns_and_round_trips_without_pickle(tmp_path: Path, tiny_backbone: Path, kind: str) -> None:
    from hone.testing import make_table

    tbl = make_table(600, seed=5, with_text=kind != "tabular")
    target = "label"
    if kind == "text":
        tbl = tbl.select(["review", "label"])
    if kind == "regression":
        target = "price"
        tbl = tbl.filter(pa.compute.is_valid(tbl.column("price")))
    pre = _setup(tbl, tmp_path, tiny_backbone, target)
    b = fit_baseline(pre, tmp_path / "train.parquet", tmp_path / "valid.parquet")
    assert b.kind == ("tfidf-linear" if kind == "text" else "lightgbm")
    valid = pq.read_table(tmp_path / "valid.parquet")
    out = b.outputs(valid)
    y = pre.targets(valid)
    if kind == "regression":
        assert np.corrcoef(out, y)[0, 1] > 0.5
    else:
        assert out.shape == (valid.num_rows, 2) and (out.argmax(1) == y).mean() > 0.75
    b.save(tmp_path / "b")
    assert not list((tmp_path / "b").glob("*.pkl"))
    again = Baseline.load(tmp_path / "b", pre)
    assert np.allclose(again.outputs(valid), out, atol=1e-6)
