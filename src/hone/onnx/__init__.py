"""Everything ONNX: the graph of a whole model (network, baseline and decision rule in one file,
:mod:`.graph`), the export with its parity check (:mod:`.export`), hone's per-token int8 quantisation
(:mod:`.int8`), the baseline's graphs (:mod:`.baseline`), and the ONNX Runtime sessions that score
with them (:mod:`.sessions`). ``onnx`` and ``onnxruntime`` are imported on first use (``hone[onnx]``).

A model is used here through what :class:`hone.Model` holds (its network, preprocessor, baseline and
decision), so this floor sits below the model package, which scores through its sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from hone.evaluation.choice import Decision
    from hone.features.pipeline import Preprocessor
    from hone.models.baseline import Baseline
    from hone.models.build import HoneNet


class Exportable(Protocol):
    """What the ONNX floor uses of a :class:`hone.Model` (the model package sits above it)."""

    net: HoneNet
    pre: Preprocessor
    baseline: Baseline | None
    decision: Decision

    @property
    def task(self) -> str: ...

    @property
    def classes(self) -> list[Any]: ...

    @property
    def baseline_features(self) -> Callable[[pa.Table], np.ndarray] | None: ...

    def outputs(self, batches: Iterable[pa.Table | pa.RecordBatch]) -> Iterator[tuple[pa.Table, np.ndarray]]: ...

    def use_runtime(self, runtime: str, model_dir: Path) -> str: ...
