"""Bounded-memory streams of Arrow record batches from Parquet files, shuffled for training."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_INDEX = "__row"
T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced ``depth`` ahead by a background thread (decoding images while the network
    trains on the previous batch). Exceptions reach the consumer; closing the generator stops the thread.
    ``depth`` 0 is ``items`` itself."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as err:  # noqa: BLE001  (re-raised in the consumer)
            q.put((_DONE, err))

    thread = threading.Thread(target=produce, name="hone-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = q.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def as_tables(batches: Iterable[pa.Table | pa.RecordBatch]) -> Iterator[pa.Table]:
    """Record batches as tables, empty ones skipped."""
    for b in batches:
        t = pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
        if t.num_rows:
            yield t


def iter_batches(path: Path, batch_size: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Read ``path`` in file order, ``batch_size`` rows at a time."""
    f = pq.ParquetFile(path)
    yield from f.iter_batches(batch_size=batch_size, columns=columns)


def shuffled_batches(
    path: Path,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    columns: list[str] | None = None,
    buffer_groups: int = 8,
    sort_key: Callable[[pa.Table], np.ndarray | None] | None = None,
    drop_last: bool = False,
    with_row_index: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[pa.Table]:
    """Yield training batches of ``batch_size`` rows in a seeded, epoch-dependent random order.

    With ``world_size`` > 1 (data-parallel training), ``batch_size`` is the global batch and this
    process (``rank``) gets its share of every step's batch, the same number of steps as every other.

    Row groups are visited in a random order and ``buffer_groups`` of them at a time are shuffled
    together, so memory stays at a few row groups whatever the file size (the split already wrote
    the training file in hash order, so this is close to a full shuffle).

    With ``sort_key`` (for text: a length per row), each buffer is sorted by that key before it is
    cut into batches, and the batches are then shuffled: similar lengths share a batch, so padding
    stays short, while the batch order stays random.
    """
    f = pq.ParquetFile(path)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(f.num_row_groups)
    sizes = [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)]
    if world_size <= 1:
        yield from _buffered_batches(
            f, order, sizes, rng, batch_size, buffer_groups, sort_key, drop_last, with_row_index, columns
        )
        return
    if len(order) >= 2 * world_size:  # big file: each process reads only its own row groups
        local = -(-batch_size // world_size)
        limit = shard_batch_count(sizes, order, local, world_size, drop_last)
        mine = _buffered_batches(f, order[rank::world_size], sizes, rng, local, buffer_groups, sort_key, drop_last,
                                 with_row_index, columns)
        for i, batch in enumerate(mine):
            if i >= limit:
                return
            yield batch
        return
    # small file (fewer row groups than two per process): every process forms the same global
    # batches as a single process would and keeps every world_size-th row of each, so the shards are
    # disjoint and together are the whole file (a last batch with fewer rows than processes is skipped)
    for batch in _buffered_batches(f, order, sizes, rng, batch_size, buffer_groups, sort_key, drop_last,
                                   with_row_index, columns):
        if batch.num_rows < world_size:
            return
        yield batch.take(np.arange(rank, batch.num_rows, world_size))


def shard_batch_count(sizes: list[int], order: np.ndarray, batch_size: int, world_size: int,
                      drop_last: bool = False) -> int:
    """Batches of ``batch_size`` rows every process trains on in an epoch when each reads its own row
    groups: the same number for all of them (gradients are averaged at each step), so the few
    batches beyond it are skipped that epoch (a different few each epoch)."""
    per = (lambda n: n // batch_size) if drop_last else (lambda n: -(-n // batch_size))  # noqa: E731
    return min(per(sum(sizes[int(g)] for g in order[r::world_size])) for r in range(world_size))


def _buffered_batches(f: pq.ParquetFile, order: np.ndarray, sizes: list[int], rng: np.random.Generator,
                      batch_size: int, buffer_groups: int, sort_key: Callable[[pa.Table], np.ndarray | None] | None,
                      drop_last: bool, with_row_index: bool, columns: list[str] | None) -> Iterator[pa.Table]:
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    carry: pa.Table | None = None
    for start in range(0, len(order), buffer_groups):
        groups = [int(g) for g in order[start:start + buffer_groups]]
        buf = f.read_row_groups(groups, columns=columns)
        if with_row_index:  # the row's position in the file, e.g. to look up cached embeddings
            rows = np.concatenate([np.arange(offsets[g], offsets[g + 1]) for g in groups])
            buf = buf.append_column(ROW_INDEX, pa.array(rows, type=pa.int64()))
        if carry is not None and carry.num_rows:
            buf = pa.concat_tables([carry, buf])
        perm = rng.permutation(buf.num_rows)
        keys = sort_key(buf.take(perm)) if sort_key is not None else None
        if keys is not None:
            perm = perm[np.argsort(keys, kind="stable")]
        buf = buf.take(perm)
        last = start + buffer_groups >= len(order)
        n_full = buf.num_rows // batch_size
        batches = [buf.slice(i * batch_size, batch_size) for i in range(n_full)]
        rest = buf.slice(n_full * batch_size)
        if last:
            if rest.num_rows and not drop_last:
                batches.append(rest)
            carry = None
        else:
            carry = rest
        for i in rng.permutation(len(batches)):
            yield batches[int(i)]
