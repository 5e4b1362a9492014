"""``hone export MODEL --format onnx [--quantize int8]``: the chosen model as one ONNX graph, checked.

The graph (:mod:`hone.onnx.graph`) holds everything after preprocessing: the network, the baseline
when the chosen model uses it (LightGBM through onnxmltools, or the TF-IDF linear model), the blend,
the temperature and the decision rule; batch and token axes are dynamic. The preprocessing
(tokeniser, imputation, scaling, vocabularies, the baseline's TF-IDF) stays in hone's Python code
and is the same for both runtimes.

At export a parity check runs on rows of ``data`` (or, without it, rows made from the model's own
vocabularies and statistics) and refuses the export when it misses: fp32 outputs within ``1e-4`` of
what the torch runtime answers; int8 (``--quantize int8``) agreeing with fp32 on at least 99% of the predicted labels.
int8 covers the matrix multiplications by constant weights (the embeddings, attention products and
head stay fp32) and tries two schemes, fastest first: ONNX Runtime's dynamic quantisation (one
activation scale per call) and, when that misses, hone's per-token scheme with smoothing
(:mod:`hone.onnx.int8`), keeping the first that passes. When fp32 passes and int8 does not,
``model.onnx`` is kept and the export still fails. The result is recorded in ``onnx.json`` beside
``model.onnx``; ``hone predict --runtime auto`` takes the fastest runtime that passed.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hone._io import atomic_path
from hone.errors import DataError, MissingDependencyError
from hone.onnx import Exportable
from hone.onnx.graph import BASELINE_PREFIX, OPSET, build
from hone.onnx.sessions import onnx_outputs, session_for

FP32_TOLERANCE = 1e-4
INT8_AGREEMENT = 0.99
INT8_SCHEMES = ("dynamic", "per-token")  # fastest first; see hone.onnx.int8


def _sample_rows(model: Exportable, data: Any, rows: int) -> pa.Table:
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
    images = model.pre.images
    for c in model.pre.schema.columns:
        if c.role == "image":
            assert images is not None
            cols[c.name] = images.sample_values(c.name, rows, rng)
        elif c.role == "text":
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


def export_onnx(model: Exportable, model_dir: Path, *, quantize: str | None = None, data: Any = None,
                rows: int = 512) -> dict[str, Any]:
    """Write ``model.onnx`` (and ``model.int8.onnx``) and ``onnx.json`` into ``model_dir``; returns
    the parity record. Raises :class:`DataError` when parity misses: nothing is left behind when fp32
    misses; when only int8 does, ``model.onnx`` and ``onnx.json`` (saying why) are kept, no int8 file."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as err:
        raise MissingDependencyError("hone export needs onnx and onnxruntime; install them with: "
                                     "pip install 'hone[onnx]'") from err
    model.use_runtime("torch", model_dir)  # the reference the graph is checked against
    sample = _sample_rows(model, data, rows)
    next(iter(model.outputs([sample.slice(0, 8)])))  # warm-up: the timing below is of scoring alone
    t0 = time.perf_counter()
    reference = next(iter(model.outputs([sample])))[1]
    torch_rows_per_s = sample.num_rows / (time.perf_counter() - t0)
    with atomic_path(model_dir / "model.onnx") as tmp:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=model_dir, prefix=".export.") as work:
            proto, info = build(model, sample, Path(work))
            onnx.save(proto, str(tmp))
        record: dict[str, Any] = {"opset": OPSET, "covers": "the chosen model (" + " + ".join(info["parts"])
                                  + f", {model.decision.model}, temperature and decision rule)", **info}
        fp32 = _check(model, tmp, sample, ort, reference)
        fp32["torch_rows_per_s"] = torch_rows_per_s
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
            record["int8"] = _int8(model, model_dir / "model.onnx", model_dir / "model.int8.onnx", sample,
                                   fp32["outputs"], ort)
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


def _int8(model: Exportable, fp32_path: Path, dst: Path, sample: pa.Table, fp32_out: np.ndarray, ort: Any
          ) -> dict[str, Any]:
    """Try the int8 schemes, fastest first; keep the first whose labels agree with fp32 on at least
    99% of the parity rows it did not learn from (regression: the first). Refuses when none does.
    The dynamic scheme learns nothing from the rows and is judged on all of them; the per-token
    scheme calibrates on the first quarter and is judged on the rest (on all under 128 rows)."""
    from hone.onnx.int8 import quantize_per_token

    n_cal = sample.num_rows // 4 if sample.num_rows >= 128 else sample.num_rows
    feeds = [feed_for(model, sample.slice(i, min(64, n_cal - i))) for i in range(0, n_cal, 64)]
    judged, judged_ref = (sample.slice(n_cal), fp32_out[n_cal:]) if n_cal < sample.num_rows else (sample, fp32_out)
    tried: dict[str, float] = {}
    skip = BASELINE_PREFIX  # the network's matrices only: the baseline stays fp32
    for scheme in INT8_SCHEMES:
        try:
            with atomic_path(dst) as q:
                if scheme == "dynamic":
                    _dynamic_int8(fp32_path, q, skip)
                else:
                    quantize_per_token(fp32_path, q, feeds, skip=skip)
                rows, ref = (sample, fp32_out) if scheme == "dynamic" else (judged, judged_ref)
                res = _check(model, q, rows, ort, ref)
                res["rows_judged"] = rows.num_rows
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


def _dynamic_int8(src: Path, dst: Path, skip: str) -> None:
    """ONNX Runtime's dynamic int8: one activation scale per call, 7-bit per-channel weights."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = [n.name for n in onnx.load(str(src)).graph.node if n.name.startswith(skip)]
    logging.getLogger().disabled = True  # it logs advice to pre-process on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True, reduce_range=True, nodes_to_exclude=exclude,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.getLogger().disabled = False


class _Missed(Exception):
    """An int8 scheme missed the agreement bar (its file is discarded)."""


def feed_for(model: Exportable, part: pa.Table) -> dict[str, np.ndarray]:
    """The graph's inputs for rows ``part``: the network's tensors and the baseline's features."""
    from hone.onnx.sessions import feeds

    return feeds(model.pre, part, model.baseline_features, network=model.decision.uses_network)


def _check(model: Exportable, path: Path, sample: pa.Table, ort: Any, reference: np.ndarray) -> dict[str, Any]:
    """Score ``sample`` with the graph at ``path``: its speed and distance from ``reference``."""
    session = session_for(path, ort)
    t0 = time.perf_counter()
    got = onnx_outputs(session, model.pre, sample, model.baseline_features, network=model.decision.uses_network)
    onnx_s = time.perf_counter() - t0
    out: dict[str, Any] = {"max_abs_diff": float(np.max(np.abs(got - reference))),
                           "rows_per_s": sample.num_rows / onnx_s, "outputs": got}
    if model.task != "regression":
        dec = model.decision
        out["label_agreement"] = float(np.mean(dec.predict(got) == dec.predict(reference)))
    return out
