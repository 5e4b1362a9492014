"""Tokenisation of the text columns with the backbone's own tokenizer (dynamic padding per batch)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hone.config import ModelConfig
from hone.data.schema import Schema
from hone.errors import ModelDirError
from hone.features.base import FeaturePreprocessor, register


@register
@dataclass
class TextPreprocessor(FeaturePreprocessor):
    """Tokenises each text column of a batch to ``(input_ids, attention_mask)`` arrays.

    Missing text is the empty string. Each batch is padded to its own longest row (capped at
    ``max_length``), never to ``max_length``: padding tokens cost as much compute as real ones.
    """

    modality: ClassVar[str] = "text"
    roles: ClassVar[tuple[str, ...]] = ("text",)
    needs_assets: ClassVar[bool] = True
    columns: list[str]
    max_length: int
    tokenizer: Any = None  # a transformers tokenizer

    @classmethod
    def fit(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
            cfg: ModelConfig) -> TextPreprocessor:
        return cls.load(columns, cfg.max_length, cfg.backbone)

    def transform(self, batch: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return self.encode(batch)

    def encoder_spec(self) -> dict[str, Any]:
        return {"columns": list(self.columns)}

    def reference(self, inputs: Any) -> Any:
        """Every token but the special ones ([CLS], [SEP], padding) replaced by [PAD]; masks as they are."""
        import torch

        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return {c: (torch.where(torch.isin(ids, special.to(ids.device)), ids, torch.full_like(ids, pad)), mask)
                for c, (ids, mask) in inputs.items()}

    def explain_row(
        self, attributions: dict[str, Any], batch: pa.Table, i: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Token attributions merged back to words; a column's attribution is its words' sum."""
        cols, words = {}, {}
        for c in self.columns:
            words[c] = self.words(batch.column(c)[i].as_py() or "", attributions[c][i])
            cols[c] = float(sum(w[1] for w in words[c]))
        return cols, {"words": words}

    def words(self, text: str, token_attr: np.ndarray) -> list[list[Any]]:
        """Token attributions of ``text`` merged back to its words: ``[[word, attribution, start, end], ...]``
        (character offsets; a word's tokens are summed; special tokens carry none)."""
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        found: dict[Any, list[Any]] = {}
        for t, ((start, end), wid) in enumerate(zip(enc["offset_mapping"], enc.word_ids())):
            if wid is None or t >= len(token_attr) or end <= start:
                continue
            w = found.setdefault(wid, [None, 0.0, start, end])
            w[1] += float(token_attr[t])
            w[3] = end
        for w in found.values():
            w[0] = text[w[2]:w[3]]
        return list(found.values())

    @classmethod
    def from_dict(cls, d: dict[str, Any], assets: Path | None) -> TextPreprocessor:
        return cls.load(d["columns"], d["max_length"], assets or "")

    def save_assets(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(folder))

    @classmethod
    def load(cls, columns: list[str], max_length: int, tokenizer_dir: Path | str) -> TextPreprocessor:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        except (OSError, ValueError) as err:
            raise ModelDirError(f"no usable tokenizer in {str(tokenizer_dir)!r}: {str(err).splitlines()[0]}") from err
        return cls(columns, max_length, tok)

    def encode(self, batch: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Return ``{column: (input_ids [B, T] int64, attention_mask [B, T] int64)}``."""
        out = {}
        for col in self.columns:
            texts = pc.fill_null(pc.cast(batch.column(col), pa.string()), "").to_pylist()
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding="longest",
                                 return_tensors="np")
            out[col] = (enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
        return out

    def lengths(self, batch: pa.Table) -> np.ndarray:
        """Tokens per row (summed over the text columns, after truncation), for length bucketing.

        Characters are a poor proxy: a URL is a few characters per token, prose four or more, so
        batches sorted by characters still padded tweets by 40% (bench/finetune_speed.py).
        """
        total = np.zeros(batch.num_rows, dtype=np.int64)
        for col in self.columns:
            texts = pc.fill_null(pc.cast(batch.column(col), pa.string()), "").to_pylist()
            ids = self.tokenizer(texts, truncation=True, max_length=self.max_length, return_attention_mask=False,
                                 return_token_type_ids=False)["input_ids"]
            total += np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "max_length": self.max_length}

    # -- the frozen strategy's embedding cache (hone.models.embedding_cache) -----------------------
    @property
    def cache_columns(self) -> list[str]:
        return list(self.columns)

    def cache_settings(self) -> str:
        return str(self.max_length)

    def content_fingerprint(self, path: Path, column: str) -> tuple[str, int]:
        """A hash of the column's texts in file order, and the row count."""
        h = hashlib.sha256()
        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=[column]):
            col = pc.fill_null(pc.cast(batch.column(0), pa.string()), "\x00<null>")
            for buf in col.buffers()[1:]:  # offsets and bytes describe the values exactly
                if buf is not None:
                    h.update(buf)
            n += batch.num_rows
        return h.hexdigest()[:24], n

    def cache_order(self, batch: pa.Table, column: str) -> np.ndarray:
        """Rows sorted by token count (little padding)."""
        return np.argsort(TextPreprocessor([column], self.max_length, self.tokenizer).lengths(batch), kind="stable")

    def column_inputs(self, batch: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
        return TextPreprocessor([column], self.max_length, self.tokenizer).encode(batch)[column]

    def from_cache(self, batch: pa.Table, column: str, embeddings: np.ndarray) -> np.ndarray:
        """The encoder's input for a column given as cached pooled embeddings."""
        return embeddings
