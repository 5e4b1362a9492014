"""The ONNX runtime path of inference: the exported graph fed by the same preprocessing as PyTorch."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from hone.features.pipeline import Preprocessor
from hone.models.inference import by_length

SUB_BATCH = 32  # rows per ONNX Runtime call: faster than 64 here, for fp32 and int8 alike


def flatten(inputs: dict[str, Any]) -> tuple[list[str], list[torch.Tensor]]:
    """``{modality: tensors}`` -> input names and tensors, in a fixed order."""
    names, tensors = [], []
    for modality, value in inputs.items():
        if isinstance(value, dict):  # text: {column: (ids, mask)}; image: {column: (pixels, present)}
            first, second = ("pixels", "present") if modality == "image" else ("ids", "mask")
            for i, (a, b) in enumerate(value.values()):
                names += [f"{modality}_{i}_{first}", f"{modality}_{i}_{second}"]
                tensors += [a, b]
        else:
            names.append(modality)
            tensors.append(value)
    return names, tensors


class SessionPool:
    """ONNX Runtime sessions on one graph, one per worker thread, each with its share of the cores.

    On few cores, two single-threaded sessions scoring two sub-batches at once beat one session
    splitting every matrix product across both cores (about 10% on a 2-core machine: less
    synchronisation, and the tokeniser of one sub-batch overlaps the other's products). Sessions
    are capped at 4 (each holds a copy of the weights); the threads are shared among them.
    """

    def __init__(self, path: Path, ort: Any = None, threads: int | None = None) -> None:
        if ort is None:
            import onnxruntime

            ort = onnxruntime
        self.path = Path(path)
        total = max(1, threads or os.cpu_count() or 1)
        self.size = min(total, 4)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = max(1, total // self.size)
        # the CPU provider only: never the Azure provider onnxruntime also lists
        self.sessions = [ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                         for _ in range(self.size)]
        self._local = threading.local()
        self._next = itertools.count()
        self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="hone-onnx") if self.size > 1 else None

    def run(self, outputs: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run on this thread's session."""
        if not hasattr(self._local, "session"):
            self._local.session = self.sessions[next(self._next) % self.size]
        return self._local.session.run(outputs, feed)

    def map(self, fn: Callable[[Any], np.ndarray], items: list[Any]) -> list[np.ndarray]:
        return list(self._pool.map(fn, items)) if self._pool is not None and len(items) > 1 else [fn(i) for i in items]


def session_for(path: Path, ort: Any = None, threads: int | None = None) -> SessionPool:
    """Sessions on the CPU for the graph at ``path`` sharing ``threads`` (default: all cores)."""
    return SessionPool(path, ort, threads)


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


def onnx_outputs(session: SessionPool, pre: Preprocessor, batch: pa.Table,
                 baseline: Callable[[pa.Table], np.ndarray] | None = None, *, network: bool = True,
                 sub_batch: int = SUB_BATCH) -> np.ndarray:
    """The graph's ``output`` for an Arrow batch (length-sorted sub-batches, as the PyTorch path)."""
    def run(part: pa.Table) -> np.ndarray:
        return session.run(["output"], feeds(pre, part, baseline, network=network))[0].astype(np.float64)

    return by_length(pre, batch, run, sub_batch, session.map)
