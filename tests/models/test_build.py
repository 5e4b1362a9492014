from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hone.config import ModelConfig
from hone.data.schema import infer_schema
from hone.data.sources import connect, open_table
from hone.features.pipeline import Preprocessor
from hone.models.build import NetSpec, build_model
from hone.models.inference import outputs_for


def _setup(tbl: pa.Table, backbone: Path, tmp: Path):
    schema = infer_schema(open_table(tbl, connect()), target="label")
    pq.write_table(tbl, tmp / "t.parquet")
    cfg = ModelConfig(backbone=str(backbone), max_length=32, min_category_count=1)
    pre = Preprocessor.fit(schema, tmp / "t.parquet", con=connect(), cfg=cfg)
    spec = NetSpec(pre.encoder_specs(), 2, 16, 0.0)
    return pre, build_model(spec, {"text": backbone}, pretrained=True).eval()


def test_output_shape_and_every_text_column_counts(tmp_path: Path, tiny_backbone: Path, table: pa.Table) -> None:
    pre, net = _setup(table, tiny_backbone, tmp_path)
    batch = table.slice(0, 8)
    out = outputs_for(net, pre, batch, precision="fp32", device=torch.device("cpu"))
    assert out.shape == (8, 2) and np.allclose(out.sum(1), 1.0)
    changed = batch.set_column(batch.column_names.index("title"), "title", pa.array(["awful awful"] * 8))
    out2 = outputs_for(net, pre, changed, precision="fp32", device=torch.device("cpu"))
    assert not np.allclose(out, out2)  # the second text column reaches the head


def test_length_sorted_inference_keeps_row_order(tmp_path: Path, tiny_backbone: Path, table: pa.Table) -> None:
    pre, net = _setup(table, tiny_backbone, tmp_path)
    batch = table.slice(0, 16)
    together = outputs_for(net, pre, batch, precision="fp32", device=torch.device("cpu"))
    one_by_one = np.concatenate([outputs_for(net, pre, batch.slice(i, 1), precision="fp32",
                                             device=torch.device("cpu")) for i in range(16)])
    assert np.allclose(together, one_by_one, atol=1e-5)


def test_tabular_only_network(tmp_path: Path, tab_table: pa.Table) -> None:
    schema = infer_schema(open_table(tab_table, connect()), target="label")
    pq.write_table(tab_table, tmp_path / "t.parquet")
    pre = Preprocessor.fit(schema, tmp_path / "t.parquet", con=connect(), cfg=ModelConfig(min_category_count=1))
    net = build_model(NetSpec(pre.encoder_specs(), 3, 8, 0.1), {}, pretrained=False)
    assert net(pre.inputs(tab_table.slice(0, 5))).shape == (5, 3)
    assert net.text is None and list(net.encoders) == list(pre.modalities)
