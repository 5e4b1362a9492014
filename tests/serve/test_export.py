"""ONNX export: parity with PyTorch at export (fp32 and int8), refusal when it misses, and scoring
with --runtime onnx giving PyTorch's answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import hone
from hone.cli import main
from hone.errors import DataError
from hone.testing import make_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    hone.fit(make_table(600, seed=5), target="label", output=out, backbone=str(tiny_backbone), epochs=4,
             show_progress=False, max_length=16, lr=1e-3, **{"train.head_lr": 5e-3})
    return out / "model"


def test_export_checks_parity_and_onnx_scores_like_torch(trained: Path, tmp_path: Path) -> None:
    rows = tmp_path / "rows.parquet"
    pq.write_table(make_table(300, seed=21), rows)
    rec = hone.export(trained, quantize="int8", data=str(rows))
    assert (trained / "model.onnx").is_file() and (trained / "model.int8.onnx").is_file()
    assert rec["fp32"]["max_abs_diff"] <= 1e-4 and rec["int8"]["label_agreement"] >= 0.99
    assert json.loads((trained / "onnx.json").read_text())["rows_checked"] == 300  # up to 512 rows of --data
    assert rec["int8"]["scheme"] in ("dynamic", "per-token")
    # text (two columns of different lengths), numeric, categorical, boolean and date inputs all in the graph
    assert {"text_0_ids", "text_1_mask", "numeric", "categorical"} <= set(rec["inputs"])
    fresh = make_table(120, seed=33)
    torch_p = hone.load(trained).predict_proba(fresh)
    for runtime, tol in (("onnx", 1e-4), ("onnx-int8", 0.05)):
        m = hone.load(trained, runtime=runtime)
        assert m.runtime == runtime and np.abs(m.predict_proba(fresh) - torch_p).max() <= tol
    assert hone.load(trained, runtime="auto").runtime in {"torch", "onnx", "onnx-int8"}
    one = hone.load(trained, runtime="onnx")
    assert one.session.size == min(4, torch.get_num_threads())  # sessions share the cores
    one.set_threads(1)  # --workers 1: one single-threaded session
    assert one.session.size == 1 and np.abs(one.predict_proba(fresh) - torch_p).max() <= 1e-4
    out = tmp_path / "scored.parquet"
    assert main(["predict", str(trained), str(rows), "--output", str(out), "--runtime", "onnx"]) == 0
    scored = pq.read_table(out)
    ref = hone.load(trained).predict_proba(make_table(300, seed=21))
    assert np.abs(np.asarray(scored["proba_pos"]) - ref[:, list(hone.load(trained).classes).index("pos")]).max() <= 1e-4


def test_regression_export_parity(tmp_path: Path, tiny_backbone: Path) -> None:
    hone.fit(make_table(300, seed=6), target="price", output=tmp_path / "r", backbone=str(tiny_backbone), epochs=1,
             show_progress=False, max_length=16)
    rec = hone.export(tmp_path / "r" / "model")
    assert rec["fp32"]["max_abs_diff"] <= 1e-4 and rec["parity_rows"] == "made from the model's schema"
    fresh = make_table(50, seed=8)
    a = hone.load(tmp_path / "r" / "model").predict(fresh)
    b = hone.load(tmp_path / "r" / "model", runtime="onnx").predict(fresh)
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(a).max()))


def test_a_failed_parity_check_leaves_nothing(trained: Path, tmp_path: Path, monkeypatch) -> None:
    import shutil

    import hone.onnx.export as ex

    copy = tmp_path / "m"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("*.onnx", "onnx.json"))
    monkeypatch.setattr(ex, "FP32_TOLERANCE", -1.0)
    with pytest.raises(DataError, match="refused"):
        hone.export(copy)
    assert not any(p.suffix == ".onnx" or p.name.startswith(".") for p in copy.iterdir())
    assert main(["predict", str(copy), str(tmp_path / "x.csv"), "--output", str(tmp_path / "o.csv"),
                 "--runtime", "onnx"]) == 2


def test_int8_falls_back_to_per_token_then_refuses_keeping_fp32(trained: Path, tmp_path: Path, monkeypatch) -> None:
    import shutil

    import onnx

    import hone.onnx.export as ex

    copy = tmp_path / "m"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("*.onnx", "onnx.json"))
    monkeypatch.setattr(ex, "INT8_SCHEMES", ("per-token",))
    rec = hone.export(copy, quantize="int8")
    assert rec["int8"]["scheme"] == "per-token" and rec["int8"]["label_agreement"] >= 0.99
    ops = {n.op_type for n in onnx.load(str(copy / "model.int8.onnx")).graph.node}
    assert "MatMulIntegerToFloat" in ops and "QuantizeLinear" in ops
    fresh = make_table(80, seed=41)
    p32 = hone.load(copy, runtime="onnx").predict_proba(fresh)
    assert np.abs(hone.load(copy, runtime="onnx-int8").predict_proba(fresh) - p32).max() <= 0.05
    # no scheme reaches the bar: the export fails, fp32 stays usable, no int8 file is left
    monkeypatch.setattr(ex, "INT8_AGREEMENT", 1.01)
    with pytest.raises(DataError, match="int8 export refused"):
        hone.export(copy, quantize="int8")
    assert (copy / "model.onnx").is_file() and not (copy / "model.int8.onnx").exists()
    assert "int8_refused" in json.loads((copy / "onnx.json").read_text())
    assert hone.load(copy, runtime="auto").runtime in {"torch", "onnx"}
    assert np.abs(hone.load(copy, runtime="onnx").predict_proba(fresh) - p32).max() <= 1e-6


@pytest.mark.parametrize("choice,classes", [("blend", 3), ("baseline", 2), ("blend", 0)])
def test_the_graph_holds_lightgbm_blend_temperature_and_decision(tmp_path: Path, choice: str, classes: int) -> None:
    """Tabular models (no text: the baseline is LightGBM): the exported graph answers what the
    torch runtime answers, for a blend and for the baseline alone, classification and regression."""
    import onnx

    table = make_table(500, seed=9, classes=max(classes, 2), with_text=False)
    target = "label" if classes else "price"
    if not classes:
        table = table.filter(table.column("price").is_valid())
    hone.fit(table, target=target, output=tmp_path / "run", epochs=2, show_progress=False,
             **{"evaluate.model": choice})
    model_dir = tmp_path / "run" / "model"
    rec = hone.export(model_dir)
    assert rec["fp32"]["max_abs_diff"] <= 1e-4 and any(p.startswith("baseline (lightgbm)") for p in rec["parts"])
    ops = {n.op_type for n in onnx.load(str(model_dir / "model.onnx")).graph.node}
    assert ops & {"TreeEnsembleClassifier", "TreeEnsembleRegressor"}
    assert ("Gemm" in ops or "MatMul" in ops) == (choice == "blend")  # the network only when the choice uses it
    fresh = make_table(150, seed=12, classes=max(classes, 2), with_text=False)
    torch_model, onnx_model = hone.load(model_dir), hone.load(model_dir, runtime="onnx")
    a, b = torch_model.predict_outputs(fresh), onnx_model.predict_outputs(fresh)
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(a).max()))
    if classes:
        assert list(torch_model.predict(fresh)) == list(onnx_model.predict(fresh))
        import onnxruntime as ort  # the graph's own label output applies the decision rule as hone does

        from hone.onnx.sessions import feeds

        s = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        label = s.run(["label"], feeds(torch_model.pre, fresh, torch_model.baseline.features,
                                        network=choice == "blend"))[0]
        assert list(np.asarray(torch_model.classes)[label]) == list(torch_model.predict(fresh))
