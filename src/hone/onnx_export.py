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
PyTorch; int8 (``--quantize int8``) agreeing with fp32 on at least 99% of the predicted labels.
int8 covers the matrix multiplications by constant weights (the embeddings, attention products and
head stay fp32) and tries two schemes, fastest first: ONNX Runtime's dynamic quantisation (one
activation scale per call) and, when that misses, hone's per-token scheme with smoothing
(:mod:`hone.models.onnx_int8`), keeping the first that passes. When fp32 passes and int8 does not,
``model.onnx`` is kept and the export still fails. The result is recorded in ``onnx.json`` beside
``model.onnx``; ``hone predict --runtime auto`` takes the fastest runtime that passed.
"""

from __future__ import annotations

import json
import logging
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
from hone.models.inference import by_length
from hone.models.onnx_inference import flatten, onnx_outputs, session_for

FP32_TOLERANCE = 1e-4
INT8_AGREEMENT = 0.99
INT8_SCHEMES = ("dynamic", "per-token")  # fastest first; see hone.models.onnx_int8
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
            months, days = rng.integers(1, 13, rows), rng.integers(1, 29, rows)
            cols[c.name] = [f"2024-{m:02d}-{d:02d}" for m, d in zip(months, days)]
        else:
            cols[c.name] = [str(v) for v in rng.integers(0, 5, rows)]
    return _sample_rows(model, pa.table(cols), rows)  # typed as the schema says, as scoring does


def export_onnx(model: Model, model_dir: Path, *, quantize: str | None = None, data: Any = None,
                rows: int = 512) -> dict[str, Any]:
    """Write ``model.onnx`` (and ``model.int8.onnx``) and ``onnx.json`` into ``model_dir``; returns
    the parity record. Raises :class:`DataError` when parity misses: nothing is left behind when fp32
    misses; when only int8 does, ``model.onnx`` and ``onnx.json`` (saying why) are kept, no int8 file."""
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
    record["rows_checked"] = int(sample.num_rows)
    record["parity_rows"] = "given (--data)" if data is not None else "made from the model's schema"
    refused = None
    (model_dir / "model.int8.onnx").unlink(missing_ok=True)  # never one from an earlier export beside this one
    if quantize == "int8":
        try:
            record["int8"] = _int8(model, graph, structure, model_dir / "model.onnx", model_dir / "model.int8.onnx",
                                   sample, fp32, ort)
        except DataError as err:
            refused = err
            record["int8_refused"] = str(err)
    for part in ("fp32", "int8"):
        if part in record:
            record[part].pop("outputs", None)
    with atomic_path(model_dir / "onnx.json") as tmp_json:
        tmp_json.write_text(json.dumps(record, indent=2))
    if refused is not None:
        raise refused
    return record


def _int8(model: Model, graph: _Graph, structure: dict[str, Any], fp32_path: Path, dst: Path, sample: pa.Table,
          fp32: dict[str, Any], ort: Any) -> dict[str, Any]:
    """Try the int8 schemes, fastest first; keep the first whose labels agree with fp32 on at least
    99% of the parity rows (regression: the first). Refuses when none does."""
    from hone.models.onnx_int8 import quantize_per_token

    feeds = [dict(zip(*_np_feed(model.pre.inputs(sample.slice(i, 64), "cpu")))) for i in range(0, sample.num_rows, 64)]
    tried: dict[str, float] = {}
    for scheme in INT8_SCHEMES:
        try:
            with atomic_path(dst) as q:
                if scheme == "dynamic":
                    _dynamic_int8(fp32_path, q)
                else:
                    quantize_per_token(fp32_path, q, feeds)
                res = _check(model, graph, structure, q, sample, ort, reference=fp32["outputs"])
                if model.task != "regression":
                    tried[scheme] = res["label_agreement"]
                    if res["label_agreement"] < INT8_AGREEMENT:
                        raise _Missed
        except _Missed:
            continue
        res["scheme"] = scheme
        res["schemes_tried"] = tried
        return res
    raise DataError("int8 export refused: no scheme agrees with fp32 on 99% of predicted labels ("
                    + ", ".join(f"{k} {v:.1%}" for k, v in tried.items()) + "); model.onnx (fp32) is kept")


def _dynamic_int8(src: Path, dst: Path) -> None:
    """ONNX Runtime's dynamic int8: one activation scale per call, 7-bit per-channel weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().disabled = True  # it logs advice to pre-process on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True, reduce_range=True, extra_options={"MatMulConstBOnly": True})
    finally:
        logging.getLogger().disabled = False


class _Missed(Exception):
    """An int8 scheme missed the agreement bar (its file is discarded)."""


def _np_feed(inputs: dict[str, Any]) -> tuple[list[str], list[np.ndarray]]:
    names, tensors = flatten(inputs)
    return names, [t.numpy() for t in tensors]


def _check(model: Model, graph: _Graph, structure: dict[str, Any], path: Path, sample: pa.Table, ort: Any,
           reference: np.ndarray | None = None) -> dict[str, Any]:
    session = session_for(path, ort)
    t0 = time.perf_counter()
    got = onnx_outputs(session, model.pre, sample)
    onnx_s = time.perf_counter() - t0
    def run_torch(part: pa.Table) -> np.ndarray:
        with torch.inference_mode():
            return graph(*flatten(model.pre.inputs(part, "cpu"))[1]).numpy().astype(np.float64)

    t0 = time.perf_counter()
    torch_out = by_length(model.pre, sample, run_torch)  # batched as the torch runtime scores
    torch_s = time.perf_counter() - t0
    ref = torch_out if reference is None else reference
    out: dict[str, Any] = {"max_abs_diff": float(np.max(np.abs(got - torch_out))),
                           "rows_per_s": sample.num_rows / onnx_s, "torch_rows_per_s": sample.num_rows / torch_s,
                           "outputs": got}
    if model.task != "regression":
        out["label_agreement"] = float(np.mean(got.argmax(1) == ref.argmax(1)))
    return out
