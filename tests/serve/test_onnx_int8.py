"""hone's per-token int8 rewrite of an ONNX graph, on a single matrix product with outlier tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hone.onnx.int8 import quantize_per_token  # noqa: E402


def _graph(path: Path, w: np.ndarray) -> None:
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, w.shape[0]])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None, w.shape[1]])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


def test_per_token_int8_keeps_ordinary_tokens_exact_despite_an_outlier_token(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, (64, 32)).astype(np.float32)
    x = rng.normal(0, 1, (4, 10, 64)).astype(np.float32)
    x[:, 0] *= 300  # one token per sequence with huge activations (as [CLS]/[SEP] in BERT models)
    x[:, :, 5] *= 20  # and one outlier channel everywhere
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    _graph(src, w)
    assert quantize_per_token(src, dst, [{"x": x}]) == 1
    y = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    exact = x @ w
    rel = np.abs(y - exact)[:, 1:].max() / np.abs(exact[:, 1:]).max()
    assert rel < 0.03  # ordinary tokens keep their precision
    from onnxruntime.quantization import QuantType, quantize_dynamic

    per_call = tmp_path / "d.onnx"
    quantize_dynamic(str(src), str(per_call), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    yd = ort.InferenceSession(str(per_call), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(yd - exact)[:, 1:].max() / np.abs(exact[:, 1:]).max() > 3 * rel  # one scale per call does not
