"""Batched inference: Arrow batches through the preprocessor and the network to numpy outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import torch

from hone.data.batches import as_tables
from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet
from hone.models.precision import autocast

SUB_BATCH = 64  # rows per model call (length-sorted: little padding)


def by_length(pre: Preprocessor, batch: pa.Table, run: Callable[[pa.Table], np.ndarray], sub_batch: int = SUB_BATCH,
              map_fn: Callable[[Callable[[pa.Table], np.ndarray], list[pa.Table]], list[np.ndarray]] | None = None
              ) -> np.ndarray:
    """``run`` over sub-batches of rows sorted by token count (they pad little), the results put
    back in the batch's order; the whole batch at once when there is no text. ``map_fn`` (like
    ``map``, returning a list) may run the sub-batches concurrently."""
    images = "image" in pre.modalities  # decoded per sub-batch: a 2,048-row batch of images would take gigabytes
    if batch.num_rows <= 1 or (pre.text is None and map_fn is None and not images):
        return run(batch)
    if pre.text is None:  # no padding to save: chunks for the concurrent runs, or to bound decoded images
        step = sub_batch if images else 1024
        parts = [batch.slice(i, step) for i in range(0, batch.num_rows, step)]
        return np.concatenate(map_fn(run, parts) if map_fn is not None else [run(p) for p in parts])
    lengths = pre.lengths(batch)
    assert lengths is not None  # the table has text
    order = np.argsort(lengths, kind="stable")
    batch = batch.take(order)
    parts = [batch.slice(i, sub_batch) for i in range(0, batch.num_rows, sub_batch)]
    res = np.concatenate(map_fn(run, parts) if map_fn is not None else [run(p) for p in parts])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return res[inv]


def outputs_for(model: HoneNet, pre: Preprocessor, batch: pa.Table, *, precision: str, device: torch.device,
                sub_batch: int = SUB_BATCH) -> np.ndarray:
    """Probabilities ``[B, K]`` for classification or values ``[B]`` (original scale) for regression."""
    def run(part: pa.Table) -> np.ndarray:
        with torch.inference_mode(), autocast(precision, device):
            return to_outputs(model(pre.inputs(part, device)).float(), pre)

    return by_length(pre, batch, run, sub_batch)


def to_outputs(out: torch.Tensor, pre: Preprocessor) -> np.ndarray:
    """Network output ``[B, K]`` -> probabilities ``[B, K]``, or ``[B, 1]`` -> values in the target's scale."""
    if pre.schema.task == "regression":
        return out[:, 0].float().cpu().numpy().astype(np.float64) * pre.target_std + pre.target_mean
    return torch.softmax(out.float(), dim=1).cpu().numpy().astype(np.float64)


def iter_outputs(model: HoneNet, pre: Preprocessor, batches: Iterable[pa.Table | pa.RecordBatch], *,
                 precision: str, device: torch.device) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Yield ``(batch, outputs)`` for each batch, the network in eval mode."""
    was_training = model.training
    model.eval()
    try:
        for t in as_tables(batches):
            yield t, outputs_for(model, pre, t, precision=precision, device=device)
    finally:
        model.train(was_training)
