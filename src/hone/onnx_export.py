"""``hone export MODEL --format onnx [--quantize int8]``: the network as one ONNX graph, checked.

The graph holds the whole network: the text encoder (token ids and attention masks of each text
column in, masked mean pooling inside), the numeric and categorical encoders, the head, and the
output transform: the softmax with the calibration temperature for classification (when the chosen
model is the network alone), the standardisation undone for regression. Batch and sequence axes
are dynamic. The preprocessing (tokeniser, imputation, scaling, vocabularies) stays in hone's
Python code and is the same for both runtimes; so does the combination with the baseline when the
chosen model is a blend or the baseline (the baseline is not in the graph yet).

At export a parity check runs on rows of ``data`` (or, without it, rows made from the model's own
vocabularies and statistics) and refuses the export when it misses: fp32 outputs within ``1e-4`` of
PyTorch; int8 (``--quantize int8``: dynamic int8 weights of the matrix multiplications, one scale
per output channel, the embeddings kept in fp32) agreeing with fp32 on at least 99% of the predicted labels. The result is
recorded in ``onnx.json`` beside ``model.onnx``; ``hone predict --runtime auto`` takes the fastest
runtime that passed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from hone._io import atomic_path
from hone.artifact import Model
from hone.errors import DataError, MissingDependencyError
from hone.models.onnx_inference import flatten, onnx_outputs, session_for

FP32_TOLERANCE = 1e-4
INT8_AGREEMENT = 0.99
_OPSET = 17


class _Graph(nn.Module):
    """The network with flat tensor inputs and the output transform of :func:`to_outputs`."""

    def __init__(self, model: Model, structure: dict[str, Any]) -> None:
        super().__init__()
        self.net = model.net
        self.structure = structure  # modality -> list of text columns, or None for a single tensor
        self.regression = model.task == "regression"
        self.mean, self.std = float(model.pre.target_mean), float(model.pre.target_std)
        dec = model.decision
        self.temperature = float(dec.temperature or 1.0) if dec.model == "network" else 1.0

    def forward(self, *flat: torch.Tensor) -> torch.Tensor:
        batch, k = {}, 0
        for modality, columns in self.structure.items():
            if columns is None:
                batch[modality] = flat[k]
                k += 1
            else:
                batch[modality] = {c: (flat[k + 2 * i], flat[k + 2 * i + 1]) for i, c in enumerate(columns)}
                k += 2 * len(columns)
        out = self.net(batch).float()
        if self.regression:
            return out[:, 0] * self.std + self.mean
        return torch.softmax(out / self.temperature, dim=1)


def _sample_rows(model: Model, data: Any, rows: int) -> pa.Table:
    if data is not None:
        from hone.data.sources import connect, open_table

        con = connect(keep_order=True)
        try:
            table = open_table(data, con)
            from hone.data.schema import check_columns, scoring_query

            from hone.data.sql import qi

            check_columns(table, model.pre.schema.names(), "a feature the model was trained on")
            query, _ = scoring_query(model.pre.schema, table, flag_prefix="__hone_coerced_")
            names = ", ".join(qi(c) for c in model.pre.schema.names())
            got = con.sql(f"SELECT {names} FROM ({query}) LIMIT {int(rows)}").to_arrow_table()
        finally:
            con.close()
        if got.num_rows == 0:
            raise DataError("the parity rows (--data) hold no row")
        return got
    # rows made from the model's own schema: words of its tokenizer, numbers around the means
    rng = np.random.default_rng(0)
    cols: dict[str, Any] = {}
    words = "good bad price service quality late fast the and product great poor refund".split()
    for c in model.pre.schema.columns:
        if c.role == "text":
            cols[c.name] = [" ".join(rng.choice(words, rng.integers(3, 30))) for _ in range(rows)]
        elif c.role in ("numeric",):
            cols[c.name] = rng.normal(0, 10, rows)
        elif c.role == "boolean":
            cols[c.name] = rng.random(rows) < 0.5
        elif c.role == "datetime":
            cols[c.name] = [f"2024-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, rows), rng.integers(1, 29, rows))]
        else:
            cols[c.name] = [str(v) for v in rng.integers(0, 5, rows)]
    return _sample_rows(model, pa.table(cols), rows)  # typed as the schema says, as scoring does


def export_onnx(model: Model, model_dir: Path, *, quantize: str | None = None, data: Any = None,
                rows: int = 256) -> dict[str, Any]:
    """Write ``model.onnx`` (and ``model.int8.onnx``) and ``onnx.json`` into ``model_dir``; returns
    the parity record. Raises :class:`DataError` when parity misses (nothing is left behind)."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise MissingDependencyError("hone export needs onnx and onnxruntime; install them with: "
                                     "pip install 'hone[onnx]'") from err
    model.net.eval()
    sample = _sample_rows(model, data, rows)
    inputs = model.pre.inputs(sample.slice(0, min(8, sample.num_rows)), "cpu")
    names, tensors = flatten(inputs)
    structure = {m: (list(v) if isinstance(v, dict) else None) for m, v in inputs.items()}
    graph = _Graph(model, structure).eval()
    # each text column has its own token axis (a batch pads each column to its own longest text)
    dynamic = {n: ({0: "batch", 1: "tokens_" + n.rsplit("_", 1)[0]} if n.endswith(("_ids", "_mask")) else {0: "batch"})
               for n in names}
    dynamic["output"] = {0: "batch"}
    record: dict[str, Any] = {"inputs": names, "output": "output", "opset": _OPSET, "structure": structure}
    with atomic_path(model_dir / "model.onnx") as tmp:
        with torch.inference_mode():
            torch.onnx.export(graph, tuple(tensors), str(tmp), input_names=names, output_names=["output"],
                              dynamic_axes=dynamic, opset_version=_OPSET, dynamo=False)
        fp32 = _check(model, graph, structure, tmp, sample, ort)
        if fp32["max_abs_diff"] > FP32_TOLERANCE:
            raise DataError(f"ONNX export refused: fp32 outputs differ from PyTorch by up to "
                            f"{fp32['max_abs_diff']:.2e} (tolerance {FP32_TOLERANCE:g})")
        record["fp32"] = fp32
        if quantize == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with atomic_path(model_dir / "model.int8.onnx") as q:
                # MatMul only: the encoder's matrices; the head's Gemm nodes and the embeddings stay fp32
                quantize_dynamic(str(tmp), str(q), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                                 per_channel=True)  # one scale per output channel
                int8 = _check(model, graph, structure, q, sample, ort, reference=fp32["outputs"])
                if model.task != "regression" and int8["label_agreement"] < INT8_AGREEMENT:
                    raise DataError(f"int8 export refused: it agrees with fp32 on {int8['label_agreement']:.1%} "
                                    f"of predicted labels (needs {INT8_AGREEMENT:.0%})")
            record["int8"] = int8
    for part in ("fp32", "int8"):
        if part in record:
            record[part].pop("outputs", None)
    record["rows_checked"] = int(sample.num_rows)
    record["parity_rows"] = "given (--data)" if data is not None else "made from the model's schema"
    (model_dir / "onnx.json").write_text(json.dumps(record, indent=2))
    return record


def _check(model: Model, graph: _Graph, structure: dict[str, Any], path: Path, sample: pa.Table, ort: Any,
           reference: np.ndarray | None = None) -> dict[str, Any]:
    session = session_for(path, ort)
    t0 = time.perf_counter()
    got = onnx_outputs(session, model.pre, sample)
    onnx_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        names, tensors = flatten(model.pre.inputs(sample, "cpu"))
        torch_out = graph(*tensors).numpy().astype(np.float64)
    torch_s = time.perf_counter() - t0
    ref = torch_out if reference is None else reference
    out: dict[str, Any] = {"max_abs_diff": float(np.max(np.abs(got - torch_out))), "rows_per_s": sample.num_rows / onnx_s,
                           "torch_rows_per_s": sample.num_rows / torch_s, "outputs": got}
    if model.task != "regression":
        out["label_agreement"] = float(np.mean(got.argmax(1) == ref.argmax(1)))
    return out
