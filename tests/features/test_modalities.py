from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hone.config import ModelConfig
from hone.data.schema import infer_schema
from hone.data.sources import connect, open_table
from hone.features.base import FEATURES, modality_of
from hone.features.pipeline import Preprocessor


def _fit(tbl: pa.Table, tmp: Path, **model) -> Preprocessor:
    schema = infer_schema(open_table(tbl, connect()), target="label")
    pq.write_table(tbl, tmp / "train.parquet")
    cfg = ModelConfig(**{"max_categories": 100, "min_category_count": 2, **model})
    return Preprocessor.fit(schema, tmp / "train.parquet", con=connect(), cfg=cfg)


def test_roles_map_to_registered_modalities() -> None:
    assert {modality_of(r) for r in ("numeric", "boolean", "datetime")} == {"numeric"}
    assert modality_of("categorical") == "categorical" and modality_of("text") == "text"
    assert modality_of("image") == "image"
    assert set(FEATURES) == {"categorical", "image", "numeric", "text"}


def test_statistics_come_from_the_training_file_only(tmp_path: Path, tab_table: pa.Table) -> None:
    pre = _fit(tab_table, tmp_path)
    assert set(pre.modalities) == {"numeric", "categorical"}
    num, cat = pre.modalities["numeric"], pre.modalities["categorical"]
    price = next(f for f in num.features if f.column == "price")
    values = np.array([v for v in tab_table.column("price").to_pylist() if v is not None])
    assert np.isclose(price.mean, values.mean()) and np.isclose(price.std, values.std())
    assert 0 < price.missing_rate < 0.1
    assert {f.part for f in num.features if f.column == "when"} == {"year", "month", "day", "weekday"}
    assert sorted(cat.features[0].vocab) == ["east", "north", "south", "west"]


def test_transform_standardises_flags_missing_and_buckets_unknowns(tmp_path: Path, tab_table: pa.Table) -> None:
    pre = _fit(tab_table, tmp_path)
    new = tab_table.slice(0, 3)
    new = new.set_column(new.column_names.index("price"), "price", pa.array([None, 1e6, 10.0]))
    new = new.set_column(new.column_names.index("store"), "store", pa.array(["mars", None, "north"]))
    inputs = pre.inputs(new)
    num, cat = inputs["numeric"].numpy(), inputs["categorical"].numpy()
    nump = pre.modalities["numeric"]
    i = [f.column for f in nump.features].index("price")
    assert num.shape == (3, nump.width) and num.dtype == np.float32
    assert num[0, 2 * i] == 0.0 and num[0, 2 * i + 1] == 1.0  # missing -> mean, flagged
    assert num[1, 2 * i] > 100 and num[1, 2 * i + 1] == 0.0
    assert cat[0, 0] == 0 and cat[1, 0] == 0  # unknown and missing share bucket 0
    assert cat[2, 0] == 1 + pre.modalities["categorical"].features[0].vocab.index("north")


def test_rare_categories_share_the_unknown_bucket_and_json_round_trips(tmp_path: Path) -> None:
    tbl = pa.table({"c": ["a"] * 10 + ["b"] * 10 + ["rare"], "x": list(range(21)), "label": ["p", "q"] * 10 + ["p"]})
    pre = _fit(tbl, tmp_path)
    assert sorted(pre.modalities["categorical"].features[0].vocab) == ["a", "b"]
    again = Preprocessor.from_dict(pre.to_dict(), {})
    assert again.modalities == pre.modalities and again.schema == pre.schema
