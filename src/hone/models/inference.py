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


def by_length(pre: Preprocessor, batch: pa.Table, run: Callable[[pa.Table], np.ndarray], sub_batch: int = 64
              ) -> np.ndarray:
    """``run`` over sub-batches of rows sorted by token count (they pad little), the results put
    back in the batch's order; the whole batch at once when there is no text."""
    if pre.text is None or batch.num_rows <= 1:
        return run(batch)
    order = np.argsort(pre.lengths(batch), kind="stable")
    batch = batch.take(order)
    res = np.concatenate([run(batch.slice(i, sub_batch)) for i in range(0, batch.num_rows, sub_batch)])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return res[inv]


def outputs_for(model: HoneNet, pre: Preprocessor, batch: pa.Table, *, precision: str, device: torch.device,
                sub_batch: int = 64) -> np.ndarray:
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
