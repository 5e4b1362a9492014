"""Builders for tests and benchmarks: tiny backbones built from a config, tables with known signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

POSITIVE = ["good", "great", "excellent", "love", "tasty", "fresh", "perfect", "happy"]
NEGATIVE = ["bad", "awful", "stale", "hate", "broken", "bland", "terrible", "sad"]
NEUTRAL = ["the", "a", "coffee", "tea", "box", "it", "was", "this", "product", "and", "very", "price", "arrived"]


def make_tiny_backbone(path: Path, *, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a randomly initialised 2-layer BERT and its WordPiece tokenizer to ``path``.

    Its vocabulary covers the words of :func:`make_table`, so text is tokenized without ``[UNK]``.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *NEUTRAL, "!", ".", ","]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    cfg = BertConfig(vocab_size=len(words), hidden_size=hidden_size, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=2 * hidden_size, max_position_embeddings=128)
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    BertModel(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def make_table(n: int = 400, *, seed: int = 0, classes: int = 2, with_text: bool = True) -> pa.Table:
    """A labelled table whose label depends on a text column, a numeric and a categorical column.

    Columns: ``id`` (unique ints), ``review`` (text), ``title`` (short text), ``price`` (numeric with
    missing values), ``store`` (categorical), ``member`` (boolean), ``when`` (date), ``constant``,
    ``label`` (``pos``/``neg``, or ``c0..cK`` for ``classes > 2``).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    reviews, titles = [], []
    for i in range(n):
        signal = POSITIVE if y[i] % 2 == 0 else NEGATIVE
        words = list(rng.choice(NEUTRAL, 6)) + list(rng.choice(signal, 2 + y[i] // 2))
        rng.shuffle(words)
        reviews.append(" ".join(words))
        titles.append(" ".join(rng.choice(NEUTRAL, 3)) + " " + str(rng.choice(signal)))
    price = rng.normal(10 + 5 * y, 2.0)
    price_list = [None if rng.random() < 0.05 else float(p) for p in price]
    stores = np.where(rng.random(n) < 0.7, np.array(["north", "south", "east", "west"])[y % 4],
                      rng.choice(["north", "south", "east", "west"], n))
    labels = ["pos" if v == 0 else "neg" for v in y] if classes == 2 else [f"c{v}" for v in y]
    cols = {
        "id": pa.array(np.arange(n, dtype=np.int64) + 1000),
        "price": pa.array(price_list, type=pa.float64()),
        "store": pa.array(stores.tolist()),
        "member": pa.array((rng.random(n) < 0.5).tolist()),
        "when": pa.array((np.datetime64("2024-01-01") + rng.integers(0, 365, n)).astype("datetime64[D]")),
        "constant": pa.array(["same"] * n),
        "label": pa.array(labels),
    }
    if with_text:
        cols = {"review": pa.array(reviews), "title": pa.array(titles), **cols}
    return pa.table(cols)
