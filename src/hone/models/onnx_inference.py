"""The ONNX runtime path of inference: the exported graph fed by the same preprocessing as PyTorch."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from hone.features.pipeline import Preprocessor
from hone.models.inference import by_length


def flatten(inputs: dict[str, Any]) -> tuple[list[str], list[torch.Tensor]]:
    """``{modality: tensors}`` -> input names and tensors, in a fixed order."""
    names, tensors = [], []
    for modality, value in inputs.items():
        if isinstance(value, dict):  # text: {column: (ids, mask)}
            for i, (ids, mask) in enumerate(value.values()):
                names += [f"{modality}_{i}_ids", f"{modality}_{i}_mask"]
                tensors += [ids, mask]
        else:
            names.append(modality)
            tensors.append(value)
    return names, tensors


def session_for(path: Path, ort: Any = None) -> Any:
    """An ONNX Runtime session on the CPU (never the Azure provider onnxruntime also lists)."""
    if ort is None:
        import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feeds(pre: Preprocessor, part: pa.Table, baseline: Callable[[pa.Table], np.ndarray] | None = None, *,
          network: bool = True) -> dict[str, np.ndarray]:
    """The graph's inputs for the rows ``part``: the network's tensors (when the graph has the
    network) and the baseline's feature matrix (``baseline``, when it has the baseline)."""
    out: dict[str, np.ndarray] = {}
    if network:
        names, tensors = flatten(pre.inputs(part, "cpu"))
        out.update({n: t.numpy() for n, t in zip(names, tensors)})
    if baseline is not None:
        out["baseline"] = baseline(part)
    return out


def onnx_outputs(session: Any, pre: Preprocessor, batch: pa.Table,
                 baseline: Callable[[pa.Table], np.ndarray] | None = None, *, network: bool = True,
                 sub_batch: int = 64) -> np.ndarray:
    """The graph's ``output`` for an Arrow batch (length-sorted sub-batches, as the PyTorch path)."""
    def run(part: pa.Table) -> np.ndarray:
        return session.run(["output"], feeds(pre, part, baseline, network=network))[0].astype(np.float64)

    return by_length(pre, batch, run, sub_batch)
