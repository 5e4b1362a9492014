"""The baseline as an ONNX graph: input ``baseline`` (its feature matrix, as :meth:`Baseline.features`
gives it), output ``base_out`` (probabilities ``[B, K]`` or values ``[B]`` in the target's scale).

LightGBM converts through ``onnxmltools`` (the trees up to the early-stopping iteration, as scoring
uses); the TF-IDF linear model is a matrix product and a softmax (or sigmoid). The feature
extraction (TF-IDF, SVD, the tabular columns) stays in hone's Python code, shared by both runtimes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hone.errors import MissingDependencyError
from hone.models.baseline import Baseline


def baseline_graph(b: Baseline, width: int, opset: int) -> Any:
    """An ONNX ``ModelProto`` for the fitted baseline ``b`` whose features have ``width`` columns."""
    from onnx import TensorProto, helper, numpy_helper

    if b.kind == "ensemble":
        from hone.errors import ModelDirError

        members = ", ".join(f"{n} ({f})" for n, f in zip(b.info.get("members", []),
                                                          [m.family for m in getattr(b, "members", [])]))
        raise ModelDirError(f"the model's choice uses hone auto's ensemble of shallow models ({members}): no "
                            "ONNX graph for an ensemble yet (each of LightGBM, XGBoost, CatBoost and linear "
                            "members converts alone); score it with the default runtime, or use hone fit, whose "
                            "baseline exports")
    task = b.pre.schema.task
    mean, std = float(b.pre.target_mean), float(b.pre.target_std)
    inp = helper.make_tensor_value_info("baseline", TensorProto.FLOAT, [None, width])
    out = helper.make_tensor_value_info("base_out", TensorProto.FLOAT, None)
    if b.kind == "lightgbm":
        model = _lightgbm(b, width, opset)
        g = model.graph
        produced = g.output[-1].name if task != "regression" else g.output[0].name  # probabilities / variable
        if task == "regression":
            g.initializer.extend([numpy_helper.from_array(np.array([std], np.float32), "b_std"),
                                  numpy_helper.from_array(np.array([mean], np.float32), "b_mean"),
                                  numpy_helper.from_array(np.array([-1], np.int64), "b_flat")])
            g.node.extend([helper.make_node("Mul", [produced, "b_std"], ["b_scaled"]),
                           helper.make_node("Add", ["b_scaled", "b_mean"], ["b_val"]),
                           helper.make_node("Reshape", ["b_val", "b_flat"], ["base_out"])])
        else:
            g.node.append(helper.make_node("Identity", [produced], ["base_out"]))
        del g.output[:]
        g.output.append(out)
        return model
    coef, intercept = b.arrays["coef"].T.astype(np.float32), b.arrays["intercept"].astype(np.float32)
    inits = [numpy_helper.from_array(coef, "b_coef"), numpy_helper.from_array(intercept, "b_intercept")]
    nodes = [helper.make_node("MatMul", ["baseline", "b_coef"], ["b_xw"]),
             helper.make_node("Add", ["b_xw", "b_intercept"], ["b_z"])]
    if task == "multiclass":
        nodes.append(helper.make_node("Softmax", ["b_z"], ["base_out"], axis=1))
    else:
        inits += [numpy_helper.from_array(np.array([-1], np.int64), "b_flat"),
                  numpy_helper.from_array(np.array([1], np.int64), "b_ax1")]
        nodes.append(helper.make_node("Reshape", ["b_z", "b_flat"], ["b_z1"]))
        if task == "regression":
            inits += [numpy_helper.from_array(np.array(std, np.float32), "b_std"),
                      numpy_helper.from_array(np.array(mean, np.float32), "b_mean")]
            nodes += [helper.make_node("Mul", ["b_z1", "b_std"], ["b_scaled"]),
                      helper.make_node("Add", ["b_scaled", "b_mean"], ["base_out"])]
        else:  # binary: [1 - p, p]
            inits.append(numpy_helper.from_array(np.array(1.0, np.float32), "b_one"))
            nodes += [helper.make_node("Sigmoid", ["b_z1"], ["b_p"]),
                      helper.make_node("Sub", ["b_one", "b_p"], ["b_q"]),
                      helper.make_node("Unsqueeze", ["b_p", "b_ax1"], ["b_p2"]),
                      helper.make_node("Unsqueeze", ["b_q", "b_ax1"], ["b_q2"]),
                      helper.make_node("Concat", ["b_q2", "b_p2"], ["base_out"], axis=1)]
    graph = helper.make_graph(nodes, "baseline", [inp], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _lightgbm(b: Baseline, width: int, opset: int) -> Any:
    try:
        import lightgbm as lgb
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as err:
        raise MissingDependencyError("exporting a model whose choice includes the LightGBM baseline needs onnxmltools; "
                                     "install it with: pip install 'hone[onnx]'") from err
    best = b.info.get("best_iteration") or None
    booster = lgb.Booster(model_str=b.booster.model_to_string(num_iteration=best))  # the trees scoring uses
    return convert_lightgbm(booster, initial_types=[("baseline", FloatTensorType([None, width]))],
                            target_opset=min(opset, 15), zipmap=False)  # its highest; ops valid later too
