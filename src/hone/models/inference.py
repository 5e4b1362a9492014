"""Batched inference: Arrow batches through the preprocessor and the network to numpy outputs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import torch

from hone.data.batches import as_tables
from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet
from hone.models.precision import autocast


def outputs_for(model: HoneNet, pre: Preprocessor, batch: pa.Table, *, precision: str, device: torch.device,
                sub_batch: int = 64) -> np.ndarray:
    """Probabilities ``[B, K]`` for classification or values ``[B]`` (original scale) for regression."""
    order = None
    step = batch.num_rows
    if pre.text is not None and batch.num_rows > 1:
        # Sub-batches of rows sorted by token count pad little; the original order is restored below.
        order = np.argsort(pre.lengths(batch), kind="stable")
        batch = batch.take(order)
        step = sub_batch
    with torch.inference_mode(), autocast(precision, device):
        out = torch.cat([model(pre.inputs(batch.slice(i, step), device)).float()
                         for i in range(0, batch.num_rows, step)])
    res = to_outputs(out, pre)
    if order is not None:
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        res = res[inv]
    return res


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
