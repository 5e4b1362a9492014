"""Feeders: how a split file reaches the network, for training batches and for evaluation.

:class:`Feeder` tokenises each batch (length-bucketed for training). :class:`CachedFeeder` (the
frozen strategy) replaces the text inputs by pooled embeddings computed once per split and cached
on disk. Both run every forward pass under the run's one precision.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from hone.data.batches import ROW_INDEX, iter_batches, prefetch, shuffled_batches
from hone.features.pipeline import Preprocessor, to_tensors
from hone.models.build import HoneNet
from hone.models.inference import iter_outputs, to_outputs
from hone.models.precision import autocast


class Feeder:
    """Tokenised batches, sorted by token count within shuffled buffers (little padding)."""

    def __init__(self, net: HoneNet, pre: Preprocessor, *, device: Any, precision: str, prefetch: int = 0) -> None:
        self.net, self.pre, self.device, self.precision = net, pre, device, precision
        self.prefetch = prefetch  # batches prepared ahead by a background thread (image decoding)

    def prepare(self, paths: dict[str, Path]) -> None:
        """Work done once before training (nothing here)."""

    def train_batches(self, path: Path, batch_size: int, *, seed: int, epoch: int, rank: int = 0,
                      world_size: int = 1) -> Iterator[tuple[dict[str, Any], pa.Table]]:
        """This process's share of the epoch's batches (``batch_size`` is the global batch)."""
        tables = shuffled_batches(path, batch_size, seed=seed, epoch=epoch, rank=rank, world_size=world_size,
                                  sort_key=self.pre.lengths if self.pre.text is not None else None)
        # augmentation is seeded by (seed, epoch, batch, rank): the same run sees the same images
        made = ((self.pre.inputs(t, self.device, augment=(seed, epoch, i, rank)), t) for i, t in enumerate(tables))
        yield from prefetch(made, self.prefetch)

    def outputs(self, path: Path) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """``(batch, outputs)`` over a split file, the network in eval mode."""
        yield from iter_outputs(
            self.net, self.pre, iter_batches(path, 256), precision=self.precision, device=self.device
        )


class CachedFeeder(Feeder):
    """The frozen strategy: text and image columns come from pooled embeddings computed once (``prepare``)."""

    def __init__(self, net: HoneNet, pre: Preprocessor, *, device: Any, precision: str, cache_dir: Path,
                 backbones: dict[str, Path]) -> None:
        super().__init__(net, pre, device=device, precision=precision)
        self.cache_dir, self.backbones = cache_dir, backbones
        self.cache: dict[Path, dict[str, dict[str, np.ndarray]]] = {}  # split file -> modality -> column -> [N, H]

    def prepare(self, paths: dict[str, Path]) -> None:
        from hone.models.embedding_cache import backbone_fingerprint, cached_embeddings

        for split in ("train", "validation"):
            self.cache[paths[split]] = {}
            for modality, enc in self.net.backbones().items():
                bid = backbone_fingerprint(self.backbones[modality])
                self.cache[paths[split]][modality] = cached_embeddings(
                    enc, self.pre.modalities[modality], paths[split], backbone_id=bid, precision=self.precision,
                    device=self.device, cache_dir=self.cache_dir)

    def _inputs(self, t: pa.Table, cache: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
        rows = t.column(ROW_INDEX).to_numpy()
        out = self.pre.inputs(t, self.device, skip=tuple(cache))
        for modality, columns in cache.items():
            pre: Any = self.pre.modalities[modality]  # text or image: both read their cached embeddings
            out[modality] = to_tensors(
                {c: pre.from_cache(t, c, np.ascontiguousarray(e[rows])) for c, e in columns.items()}, self.device
            )
        return out

    def train_batches(self, path: Path, batch_size: int, *, seed: int, epoch: int, rank: int = 0,
                      world_size: int = 1) -> Iterator[tuple[dict[str, Any], pa.Table]]:
        cache = self.cache[path]
        for t in shuffled_batches(path, batch_size, seed=seed, epoch=epoch, with_row_index=True, rank=rank,
                                  world_size=world_size):
            yield self._inputs(t, cache), t

    def outputs(self, path: Path) -> Iterator[tuple[pa.Table, np.ndarray]]:
        if path not in self.cache:
            yield from super().outputs(path)
            return
        cache, start = self.cache[path], 0
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.inference_mode(), autocast(self.precision, torch.device(self.device)):
                for b in iter_batches(path, 1024):
                    t = pa.Table.from_batches([b])
                    t = t.append_column(ROW_INDEX, pa.array(np.arange(start, start + t.num_rows)))
                    start += t.num_rows
                    yield t, to_outputs(self.net(self._inputs(t, cache)), self.pre)
        finally:
            self.net.train(was_training)
