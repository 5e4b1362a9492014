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


def make_tiny_vision_backbone(path: Path, *, kind: str = "mobilenet", size: int = 32, seed: int = 0) -> Path:
    """Write a randomly initialised tiny vision backbone (a 0.25-wide MobileNetV2 or a 2-layer,
    32-wide ViT) with its preprocessor config (``size`` px, no resize margin) to ``path``."""
    import json

    import torch
    from transformers import MobileNetV2Config, MobileNetV2Model, ViTConfig, ViTModel

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    if kind == "mobilenet":
        model = MobileNetV2Model(MobileNetV2Config(depth_multiplier=0.25, image_size=size, min_depth=4,
                                                   tf_padding=False, layer_norm_eps=1e-5))
    else:
        model = ViTModel(ViTConfig(image_size=size, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64), add_pooling_layer=False)
    model.save_pretrained(str(path))
    (path / "preprocessor_config.json").write_text(json.dumps(
        {"do_resize": True, "size": {"shortest_edge": size}, "do_center_crop": True,
         "crop_size": {"height": size, "width": size}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}))
    return path


def make_image_table(folder: Path, n: int = 200, *, seed: int = 0, kind: str = "path", size: int = 24,
                     with_tabular: bool = False) -> pa.Table:
    """A labelled table whose label shows in an image column ``photo``: ``red`` images are reddish,
    ``blue`` ones bluish, under noise. ``kind``: PNG files written to ``folder`` (paths relative to
    it), PNG ``bytes``, or ``pixels`` (``[H][W][3]`` lists of 0-255 values). With ``with_tabular``,
    a numeric ``weight`` and a categorical ``shop`` column that carry no signal join it."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = rng.choice(["red", "blue"], size=n)
    photos: list = []
    folder.mkdir(parents=True, exist_ok=True)
    for i, lab in enumerate(labels):
        base = np.array([170, 60, 60] if lab == "red" else [60, 60, 170], dtype=np.float64)
        arr = np.clip(base + rng.normal(0, 45, size=(size, size, 3)), 0, 255).astype(np.uint8)
        if kind == "pixels":
            photos.append(arr.tolist())
            continue
        img = Image.fromarray(arr)
        if kind == "bytes":
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            photos.append(buf.getvalue())
        else:
            name = f"img_{seed}_{i:05d}.png"
            img.save(folder / name)
            photos.append(name)
    cols = {"photo": photos, "label": labels.tolist()}
    if with_tabular:
        cols["weight"] = rng.normal(50, 10, size=n).round(2).tolist()
        cols["shop"] = rng.choice(["north", "south", "east"], size=n).tolist()
    if kind == "pixels":
        return pa.table({**cols, "photo": pa.array(photos, type=pa.list_(pa.list_(pa.list_(pa.uint8()))))})
    return pa.table(cols)


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
