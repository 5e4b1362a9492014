"""hone.fit / Model / hone.load end to end with the tiny backbone built from a config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import hone


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, table: pa.Table, tiny_backbone: Path):
    """One fitted run shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("fit-api")
    src = root / "reviews.parquet"
    pq.write_table(table, src)
    model = hone.fit(src, target="label", output=root / "run", epochs=4, backbone=str(tiny_backbone), batch_size=32,
                     show_progress=False, lr=1e-3, **{"train.head_lr": 5e-3})
    return model, root / "run", src


def test_run_directory_contents(fitted) -> None:
    model, run, _ = fitted
    assert model.run_dir == run
    files = {p.name for p in run.iterdir()}
    assert {"config.resolved.yaml", "metrics.json", "schema.json", "model", "data.fingerprint.json"} <= files
    assert not any(p.name.startswith(".") for p in run.parent.iterdir())  # no staging leftovers
    assert {p.name for p in (run / "model").iterdir()} >= {"hone.json", "model.safetensors", "backbones"}
    assert not list(run.rglob("*.bin")) and not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))
    metrics = json.loads((run / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert {"accuracy", "macro_f1", "roc_auc", "pr_auc"} <= set(metrics[split])
    assert metrics["training"]["train_samples_per_second"] > 0
    meta = json.loads((run / "model" / "hone.json").read_text())
    assert meta["classes"] == ["neg", "pos"] and meta["versions"]["hone"] == hone.__version__
    assert meta["preprocessor"]["modalities"]["numeric"]["features"] and meta["format_version"] == 2
    assert (run / "model" / "backbones" / "text" / "config.json").is_file()


def test_model_learns_the_signal(fitted) -> None:
    model, _, _ = fitted
    assert model.metrics["network"]["macro_f1"] > 0.8 and model.metrics["test"]["macro_f1"] > 0.8


def test_save_load_predict_parity(fitted, table: pa.Table) -> None:
    model, run, _ = fitted
    loaded = hone.load(run / "model")
    assert loaded.classes == model.classes and loaded.task == "binary"
    p1, p2 = model.predict_proba(table), loaded.predict_proba(table.to_pandas())
    assert p1.shape == (table.num_rows, 2) and np.allclose(p1, p2, atol=1e-6)
    assert list(loaded.predict(table)[:5]) == [model.classes[i] for i in p1[:5].argmax(1)]
    assert loaded.evaluate(table)["accuracy"] > 0.8


def test_unknown_categories_and_missing_values_at_prediction(fitted, table: pa.Table) -> None:
    model, _, _ = fitted
    new = pa.table({"review": ["great love", None], "title": [None, "bad"], "price": ["n/a", None],
                    "store": ["never seen", None], "member": [None, True], "when": ["2025-02-01", None]})
    proba = model.predict_proba(new)
    assert proba.shape == (2, 2) and np.isfinite(proba).all()


def test_resolved_config_repeats_the_run(fitted, tmp_path: Path) -> None:
    model, run, src = fitted
    cfg = yaml.safe_load((run / "config.resolved.yaml").read_text())
    assert (
        cfg["train"]["epochs"] == 4
        and cfg["data"]["task"] == "binary"
        and cfg["train"]["precision"] in ("fp32", "bf16")
    )
    again = hone.fit(config=run / "config.resolved.yaml", output=tmp_path / "again")
    assert again.metrics["test"] == model.metrics["test"]


def test_regression_and_multiclass(tmp_path: Path, fast: dict) -> None:
    from hone.testing import make_table

    t = make_table(300, seed=3, classes=3)
    m = hone.fit(t, target="label", output=tmp_path / "mc", **fast)
    assert m.task == "multiclass" and len(m.classes) == 3 and "roc_auc" not in m.metrics["test"]
    r = hone.fit(t, target="price", output=tmp_path / "reg", **{**fast, "epochs": 3})
    assert r.task == "regression" and {"rmse", "mae", "r2"} <= set(r.metrics["test"])
    assert r.predict(t.slice(0, 4)).dtype == np.float64
    page = (tmp_path / "reg" / "report.html").read_text()
    assert "Error by target range" in page and "Predictions against truth" in page and "<svg" in page
    assert "Confusion matrix" in (tmp_path / "mc" / "report.html").read_text()
