"""Pooled text and image embeddings computed once and cached on disk, for the ``frozen`` strategy.

A cache entry is keyed by what determines the numbers: the content of the column in file order
(the texts; the images' bytes, read from their files for a column of paths), so any change of
data, split or sample changes the key; the backbone's weights, config and tokenizer or
preprocessor files; the preprocessing settings (maximum length; image size) and the precision. Embeddings are
written to disk chunk by chunk and read back memory-mapped: a million rows never sit in RAM at once. Entries are
reused across runs and never go stale: a changed
input simply maps to a new key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hone._io import atomic_path
from hone._logging import get_logger
from hone.features.pipeline import to_tensors
from hone.models.precision import autocast

logger = get_logger(__name__)


def backbone_fingerprint(backbone_dir: Path) -> str:
    """A hash of every file of the backbone folder (weights, config, tokenizer), documentation aside."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(backbone_dir)):
        p = backbone_dir / name
        if p.is_file() and not name.startswith(".") and not name.lower().endswith((".md", ".txt.lock")):
            h.update(name.encode())
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def cached_embeddings(encoder: Any, pre: Any, path: Path, *, backbone_id: str, precision: str, device: torch.device,
                      cache_dir: Path, batch_rows: int = 64) -> dict[str, np.ndarray]:
    """``{column: float32 [N, H]}`` pooled embeddings of every row of ``path`` (in file order), for one
    modality's preprocessor ``pre`` and encoder ``encoder`` (text or image)."""
    out = {}
    for col in pre.cache_columns:
        data_id, n = pre.content_fingerprint(path, col)
        key = hashlib.sha256(f"{data_id}|{backbone_id}|{pre.cache_settings()}|{precision}".encode()).hexdigest()[:32]
        file = cache_dir / f"{key}.npy"
        if file.exists():
            arr = np.load(file, mmap_mode="r")
            if arr.shape[0] == n:
                logger.info("embeddings of %r (%d rows): reused from the cache", col, n)
                out[col] = arr
                continue
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as tmp:
            _compute(encoder, pre, path, col, n, tmp, precision, device, batch_rows)
        out[col] = np.load(file, mmap_mode="r")
        logger.info("embeddings of %r (%d rows): computed and cached in %s", col, n, cache_dir)
    return out


def pooled(encoder: Any, pre: Any, table: pa.Table, col: str, device: torch.device | str,
           batch_rows: int) -> np.ndarray:
    """``[N, H]`` float32 pooled embeddings of ``table``'s column ``col``, in its row order: the rows
    sorted (text: by token count) and cut into batches of ``batch_rows`` (almost no padding), then put
    back in order. The caller sets inference mode and precision."""
    order = pre.cache_order(table, col)
    t = table.take(order)
    out = np.empty((table.num_rows, encoder.hidden), dtype=np.float32)
    if not table.num_rows:
        return out
    embs = [encoder.pool(*to_tensors(pre.column_inputs(t.slice(i, batch_rows), col), device)).float().cpu().numpy()
            for i in range(0, t.num_rows, batch_rows)]
    out[order] = np.concatenate(embs)
    return out


def _compute(encoder: Any, pre: Any, path: Path, col: str, n: int, dest: Path, precision: str,
             device: torch.device, batch_rows: int) -> None:
    """Write the ``[n, H]`` float32 embeddings of ``path``'s column to the ``.npy`` file ``dest``."""
    out = np.lib.format.open_memmap(dest, mode="w+", dtype=np.float32, shape=(n, encoder.hidden))
    done = 0
    was_training = encoder.training
    encoder.eval()
    with torch.inference_mode(), autocast(precision, device):
        # Chunks of many rows are sorted (text: by token count) and cut into small batches: almost
        # no padding. The chunk's original row order is restored before it is stored.
        for chunk in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=[col]):
            t = pa.Table.from_batches([chunk])
            out[done:done + t.num_rows] = pooled(encoder, pre, t, col, device, batch_rows)
            done += t.num_rows
    encoder.train(was_training)
    out.flush()
    del out
