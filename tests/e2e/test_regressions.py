"""Regression tests for the defects of issue 13 that need a whole fit (tiny models, seconds each)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import hone
from hone.train.callbacks import Callback

ROOT = Path(__file__).resolve().parents[2]


def _tab(tmp: Path, name: str, table: pa.Table, **kw):
    return hone.fit(table, target="label", output=tmp / name, show_progress=False, **kw)


def test_the_training_seed_does_not_change_the_split_or_the_samples(tmp_path: Path, tab_table: pa.Table) -> None:
    # Regression: --seed also chose which rows --max-rows / --max-eval-rows kept, so two seeds were
    # scored on different test rows.
    caps = {"max_rows": 200, "max_eval_rows": 40, "epochs": 1}
    a = _tab(tmp_path, "a", tab_table, seed=1, **caps)
    b = _tab(tmp_path, "b", tab_table, seed=2, **caps)
    fa = json.loads((tmp_path / "a" / "data.fingerprint.json").read_text())
    fb = json.loads((tmp_path / "b" / "data.fingerprint.json").read_text())
    assert fa["splits"] == fb["splits"] and fa["splits"]["test"]["rows"] == 40
    assert a.metrics["test"]["n"] == b.metrics["test"]["n"] == 40


def test_gradient_accumulation_with_fewer_batches_than_the_count(tmp_path: Path, tab_table: pa.Table) -> None:
    # Regression: --max-rows 64 --batch-size 32 --grad-accum 4 reported `completed` with 0 steps.
    m = _tab(tmp_path, "r", tab_table, max_rows=64, batch_size=32, grad_accum_steps=4, epochs=2)
    assert m.meta["training"]["steps"] == 2 and m.meta["training"]["stop_reason"] == "completed"


def test_a_loaded_model_keeps_its_precision(tmp_path: Path, tab_table: pa.Table) -> None:
    # Regression: a model was loaded with the machine's "auto" precision, not the one it was
    # trained and evaluated with, so `hone evaluate` did not reproduce metrics.json.
    m = _tab(tmp_path, "r", tab_table, precision="bf16", epochs=2)
    meta = json.loads((tmp_path / "r" / "model" / "hone.json").read_text())
    assert meta["precision"] == "bf16"
    loaded = hone.load(tmp_path / "r" / "model")
    assert loaded.precision == "bf16" and hone.load(tmp_path / "r" / "model", precision="fp32").precision == "fp32"
    p_run = m.predict_proba(tab_table)
    assert np.array_equal(loaded.predict_proba(tab_table), p_run)


class AutocastSpy(Callback):
    """Records, for every pass through the head, whether bf16 autocast was on."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def on_fit_start(self, state, *, loop=None) -> None:
        loop.model.head.register_forward_hook(lambda *_: self.seen.append(torch.is_autocast_enabled("cpu")))


def test_frozen_strategy_uses_one_precision_for_every_pass(tmp_path: Path, table: pa.Table, fast: dict,
                                                           monkeypatch) -> None:
    # Regression: the frozen strategy validated without autocast while it trained under bf16.
    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    spy = AutocastSpy()
    hone.fit(table, target="label", output=tmp_path / "r", strategy="frozen", precision="bf16", callbacks=[spy],
             **{**fast, "epochs": 2})
    assert len(spy.seen) > 4 and all(spy.seen), spy.seen


def test_embedding_cache_key_covers_the_tokenizer_and_streams_to_disk(tmp_path: Path, tiny_backbone: Path,
                                                                      table: pa.Table, fast: dict, monkeypatch) -> None:
    from hone.models.embedding_cache import backbone_fingerprint

    other = tmp_path / "bb"
    shutil.copytree(tiny_backbone, other)
    before = backbone_fingerprint(other)
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = "good", "bad"
    vocab[a], vocab[b] = vocab[b], vocab[a]  # same weights and config, another tokenizer
    (other / "tokenizer.json").write_text(json.dumps(tok))
    assert backbone_fingerprint(other) != before

    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    from hone.models import embedding_cache

    seen = []
    real = embedding_cache.cached_embeddings

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.extend(type(v) for v in out.values())
        return out

    monkeypatch.setattr(embedding_cache, "cached_embeddings", spy)
    hone.fit(table, target="label", output=tmp_path / "r", strategy="frozen", **{**fast, "epochs": 1})
    assert seen and all(t is np.memmap for t in seen)  # read back from disk, never held whole in RAM


def test_every_duckdb_connection_has_the_memory_limit(tmp_path: Path, tab_table: pa.Table, monkeypatch) -> None:
    # Regression: the statistics query opened a bare connection, outside the memory limit and spill folder.
    import duckdb

    configs = []
    real = duckdb.connect

    def spy(*args, **kwargs):
        configs.append(kwargs.get("config", {}))
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", spy)
    _tab(tmp_path, "r", tab_table, epochs=1, **{"data.memory_limit": "300MB"})
    assert configs and all(c.get("memory_limit") for c in configs), configs
    assert {"memory_limit": "300MB"} in configs


def test_a_record_batch_reader_trains_and_scores(tmp_path: Path, tab_table: pa.Table) -> None:
    def reader(t: pa.Table) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=100))

    m = hone.fit(reader(tab_table), target="label", output=tmp_path / "r", epochs=1, show_progress=False)
    assert m.meta["training"]["rows"]["train"] > 400
    assert m.predict_proba(reader(tab_table)).shape == (tab_table.num_rows, 2)


def test_bad_numeric_cells_are_missing_and_counted(tmp_path: Path, tab_table: pa.Table) -> None:
    import pyarrow.csv as pacsv

    src = tmp_path / "train.csv"
    pacsv.write_csv(tab_table, src)
    text = src.read_text().splitlines()
    header = text[0].split(",")
    i = header.index('"price"') if '"price"' in header else header.index("price")
    cells = text[-1].split(",")
    cells[i] = "n.a."  # not a number (n/a itself is a missing value)
    src.write_text("\n".join(text[:-1] + [",".join(cells)]) + "\n")
    m = hone.fit(src, target="label", output=tmp_path / "r", epochs=1, show_progress=False)
    schema = json.loads((tmp_path / "r" / "schema.json").read_text())
    assert schema["coerced"] == {"price": 1}
    assert next(c for c in schema["columns"] if c["name"] == "price")["role"] == "numeric"

    # at prediction time, a bad cell far past the CSV sniffer's sample is scored as missing
    big = pa.concat_tables([tab_table] * 50)
    score_src = tmp_path / "score.csv"
    pacsv.write_csv(big, score_src)
    lines = score_src.read_text().splitlines()
    cells = lines[-1].split(",")
    cells[i] = "oops"
    score_src.write_text("\n".join(lines[:-1] + [",".join(cells)]) + "\n")
    from hone.scoring import predict_file

    n = predict_file(m, score_src, tmp_path / "out.parquet")
    assert n == big.num_rows and m.coerced == {"price": 1}
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.num_rows == big.num_rows and out.schema.field("id").type == pa.int64()  # other columns keep their type


def test_a_format_1_model_still_loads_and_scores_the_same() -> None:
    fixture = ROOT / "tests" / "fixtures" / "model_v1"
    model = hone.load(fixture)
    sample = pq.read_table(fixture / "sample.parquet")
    expected = np.load(fixture / "sample_proba.npy")
    assert model.classes == ["neg", "pos"] and set(model.pre.modalities) == {"text", "numeric", "categorical"}
    assert np.allclose(model.predict_proba(sample), expected, atol=1e-5)


@pytest.mark.parametrize("strategy", ["full", "frozen"])
def test_fit_callbacks_reach_the_loop(tmp_path: Path, table: pa.Table, fast: dict, strategy: str, monkeypatch) -> None:
    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    events = []

    class Record(Callback):
        def on_fit_start(self, state, *, loop=None):
            events.append(("start", type(loop.model).__name__))

        def on_evaluate(self, state, *, metrics, is_best):
            events.append(("eval", state.epoch))

    hone.fit(table, target="label", output=tmp_path / "r", strategy=strategy, callbacks=[Record()],
             **{**fast, "epochs": 2})
    assert events[0] == ("start", "HoneNet") and [e for e in events if e[0] == "eval"] == [("eval", 0), ("eval", 1)]
