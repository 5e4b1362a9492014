"""Fine-tuning strategies: what trains, what is cached, and that saved models are plain networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file

import hone


def _backbone_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net.text.backbone.state_dict().items()}


@pytest.mark.parametrize("strategy", ["lora", "top-k", "frozen", "full"])
def test_each_strategy_fits_saves_and_reloads(tmp_path: Path, table: pa.Table, fast: dict, strategy: str,
                                              monkeypatch) -> None:
    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(fast["backbone"]).state_dict()
    model = hone.fit(table, target="label", output=tmp_path / "run", strategy=strategy, top_k=1,
                     **{**fast, "epochs": 3})
    assert model.meta["training"]["strategy"] == strategy
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert not any("lora" in k for k in weights)  # adapters are merged
    saved = {k.removeprefix("encoders.text.backbone."): v for k, v in weights.items()
             if k.startswith("encoders.text.backbone.")}
    assert saved.keys() == pretrained.keys()
    changed = {k for k in saved if not torch.equal(saved[k], pretrained[k])}
    if strategy == "frozen":
        assert not changed
        assert list((tmp_path / "cache" / "embeddings").glob("*.npy"))
    elif strategy == "top-k":
        assert changed and all(k.startswith("encoder.layer.1.") for k in changed)
    else:
        assert any(k.startswith("encoder.layer.0.") for k in changed)
    loaded = hone.load(tmp_path / "run" / "model")
    assert np.allclose(loaded.predict_proba(table.slice(0, 20)), model.predict_proba(table.slice(0, 20)), atol=1e-5)
    assert model.metrics["network"]["macro_f1"] > 0.6  # the fine-tuned network itself, whatever was chosen


def test_full_without_word_embeddings_keeps_the_vocabulary_matrix(tmp_path: Path, table: pa.Table, fast: dict) -> None:
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(fast["backbone"]).state_dict()
    model = hone.fit(table, target="label", output=tmp_path / "run", strategy="full",
                     **{**fast, "epochs": 2, "model.train_word_embeddings": False})
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    saved = {k.removeprefix("encoders.text.backbone."): v for k, v in weights.items()
             if k.startswith("encoders.text.backbone.")}
    changed = {k for k in saved if not torch.equal(saved[k], pretrained[k])}
    assert "embeddings.word_embeddings.weight" not in changed
    assert "embeddings.position_embeddings.weight" in changed and any(k.startswith("encoder.layer.0.") for k in changed)
    assert model.metrics["network"]["macro_f1"] > 0.6


def test_frozen_cache_is_reused_and_invalidated(tmp_path: Path, table: pa.Table, fast: dict, monkeypatch) -> None:
    monkeypatch.setenv("HONE_CACHE_DIR", str(tmp_path / "cache"))
    hone.fit(table, target="label", output=tmp_path / "a", preset="fast", **{**fast, "epochs": 2})
    files = sorted((tmp_path / "cache" / "embeddings").glob("*.npy"))
    assert len(files) == 4  # 2 text columns x (train, validation)
    stamp = {f: f.stat().st_mtime_ns for f in files}
    hone.fit(table, target="label", output=tmp_path / "b", preset="fast", **{**fast, "epochs": 2})
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "cache" / "embeddings").glob("*.npy")} == stamp
    hone.fit(table, target="label", output=tmp_path / "c", preset="fast", max_length=8, **{**fast, "epochs": 2})
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 8  # new max length, new entries


def test_backbone_dropout_sets_every_dropout_layer(tmp_path: Path, table: pa.Table, fast: dict) -> None:
    from hone.models.encoders.text import TextEncoder, load_backbone

    enc = TextEncoder(load_backbone(fast["backbone"], pretrained=True), ["text"])
    enc.train()
    n_vocab = enc.backbone.config.vocab_size
    ids, mask = torch.randint(5, n_vocab, (4, 12)), torch.ones(4, 12, dtype=torch.long)
    torch.manual_seed(0)
    assert not torch.equal(enc.pool(ids, mask), enc.pool(ids, mask))  # the backbone's own dropout
    enc.set_dropout(0.0)
    assert torch.equal(enc.pool(ids, mask), enc.pool(ids, mask))
    # through a fit: the option reaches the network, and the run records it
    model = hone.fit(table, target="label", output=tmp_path / "run", strategy="full",
                     **{**fast, "epochs": 1, "model.backbone_dropout": 0.0})
    assert all(m.p == 0.0 for m in model.net.text.backbone.modules() if isinstance(m, torch.nn.Dropout))
    assert "backbone_dropout: 0.0" in (tmp_path / "run" / "config.resolved.yaml").read_text()
