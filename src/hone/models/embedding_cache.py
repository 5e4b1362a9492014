"""Pooled text embeddings computed once and cached on disk, for the ``frozen`` strategy.

A cache entry is keyed by what determines the numbers: the text values of the column in file
order (so any change of data, split or sample changes the key), the backbone's weights and config,
the maximum length and the precision. Entries are reused across runs and never go stale: a changed
input simply maps to a new key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from hone._io import atomic_path
from hone._logging import get_logger
from hone.features.text import TextPreprocessor
from hone.models.encoders.text import TextEncoder
from hone.models.precision import autocast

logger = get_logger(__name__)


def default_cache_dir() -> Path:
    """``$HONE_CACHE_DIR`` or ``~/.cache/hone``, then ``embeddings/``."""
    root = os.environ.get("HONE_CACHE_DIR") or Path.home() / ".cache" / "hone"
    return Path(root) / "embeddings"


def backbone_fingerprint(backbone_dir: Path) -> str:
    """A hash of the backbone folder's config and weight files."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(backbone_dir)):
        p = backbone_dir / name
        if p.is_file() and (name.endswith((".safetensors", ".bin")) or name == "config.json"):
            h.update(name.encode())
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def _texts_fingerprint(path: Path, column: str) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65536, columns=[column]):
        col = pc.fill_null(pc.cast(batch.column(0), pa.string()), "\x00<null>")
        for buf in col.buffers()[1:]:  # offsets and bytes describe the values exactly
            if buf is not None:
                h.update(buf)
        n += batch.num_rows
    return h.hexdigest()[:24], n


def cached_embeddings(encoder: TextEncoder, text: TextPreprocessor, path: Path, *, backbone_id: str,
                      precision: str, device: torch.device, cache_dir: Path, batch_rows: int = 64) -> dict[str, np.ndarray]:
    """``{column: float32 [N, H]}`` pooled embeddings of every row of ``path`` (in file order)."""
    out = {}
    for col in text.columns:
        data_id, n = _texts_fingerprint(path, col)
        key = hashlib.sha256(f"{data_id}|{backbone_id}|{text.max_length}|{precision}".encode()).hexdigest()[:32]
        file = cache_dir / f"{key}.npy"
        if file.exists():
            arr = np.load(file, mmap_mode="r")
            if arr.shape[0] == n:
                logger.info("embeddings of %r (%d rows): reused from the cache", col, n)
                out[col] = arr
                continue
        out[col] = _compute(encoder, text, path, col, precision, device, batch_rows)
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, out[col])
        logger.info("embeddings of %r (%d rows): computed and cached in %s", col, n, cache_dir)
    return out


def _compute(encoder: TextEncoder, text: TextPreprocessor, path: Path, col: str, precision: str,
             device: torch.device, batch_rows: int) -> np.ndarray:
    one = TextPreprocessor([col], text.max_length, text.tokenizer)
    parts = []
    was_training = encoder.training
    encoder.eval()
    with torch.inference_mode(), autocast(precision, device):
        # Chunks of many rows are sorted by token count and cut into small batches: almost no
        # padding. The chunk's original row order is restored before it is stored.
        for chunk in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=[col]):
            t = pa.Table.from_batches([chunk])
            order = np.argsort(one.lengths(t), kind="stable")
            t = t.take(order)
            embs = []
            for start in range(0, t.num_rows, batch_rows):
                ids, mask = one.encode(t.slice(start, batch_rows))[col]
                embs.append(encoder(torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)).float().cpu().numpy())
            emb = np.concatenate(embs)
            restored = np.empty_like(emb)
            restored[order] = emb
            parts.append(restored)
    encoder.train(was_training)
    return np.concatenate(parts).astype(np.float32)
