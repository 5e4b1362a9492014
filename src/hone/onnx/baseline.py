"""The baseline as an ONNX graph: input ``baseline`` (its feature matrix, as :meth:`Baseline.features`
gives it), output ``base_out`` (probabilities ``[B, K]`` or values ``[B]`` in the target's scale).

LightGBM converts through ``onnxmltools`` (the trees up to the early-stopping iteration, as scoring
uses); the TF-IDF linear model is a matrix product and a softmax (or sigmoid). ``hone auto``'s
ensemble is the weighted sum of its members' graphs, each reading its columns of the input
(:meth:`hone.models.ensemble.Ensemble.layout`): LightGBM and XGBoost through ``onnxmltools``, random
forests and extra trees as one ``TreeEnsembleRegressor`` built from their arrays,
CatBoost through its own ONNX export (which refuses categorical features: the error says which
member), linear members as above. The feature
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
        return _ensemble(b, width, opset)
    task = b.pre.schema.task
    mean, std = float(b.pre.target_mean), float(b.pre.target_std)
    inp = helper.make_tensor_value_info("baseline", TensorProto.FLOAT, [None, width])
    out = helper.make_tensor_value_info("base_out", TensorProto.FLOAT, None)
    if b.kind == "lightgbm":
        model = _lightgbm(b.booster, b.info.get("best_iteration"), "baseline", width, opset)
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


def _lightgbm(booster: Any, best: int | None, input_name: str, width: int, opset: int) -> Any:
    """A LightGBM booster's trees up to ``best`` (the ones scoring uses) as an ONNX model reading
    ``input_name`` ``[N, width]``: probabilities last among its outputs, or the values first."""
    try:
        import lightgbm as lgb
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as err:
        raise MissingDependencyError("exporting a model whose choice includes LightGBM needs onnxmltools; "
                                     "install it with: pip install 'hone[onnx]'") from err
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best or None))
    return convert_lightgbm(booster, initial_types=[(input_name, FloatTensorType([None, width]))],
                            target_opset=min(opset, 15), zipmap=False)  # its highest; ops valid later too


def _tree(t: Any, width: int, opset: int) -> tuple[Any, str]:
    """One fitted tree model of ``hone.shallow.portfolio`` as an ONNX model reading ``[N, width]``, and
    the name of its output: probabilities ``[N, K]`` or values ``[N, 1]``."""
    from hone.errors import ModelDirError

    try:
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as err:
        raise MissingDependencyError("exporting hone auto's ensemble needs onnxmltools; install it with: "
                                     "pip install 'hone[onnx]'") from err
    if t.family == "forest":
        from hone.shallow.forest import forest_onnx

        return forest_onnx(t.booster, t.task, width, opset)
    best = t.info.get("best_iteration")
    regression = t.task == "regression"
    if t.family == "lightgbm":
        model = _lightgbm(t.booster, best, "x", width, opset)
        return model, model.graph.output[0 if regression else -1].name
    if t.family == "xgboost":
        from onnxmltools import convert_xgboost

        booster = t.booster[: best + 1] if best is not None else t.booster
        model = convert_xgboost(booster, initial_types=[("x", FloatTensorType([None, width]))],
                                target_opset=min(opset, 15))
        return model, model.graph.output[0 if regression else -1].name
    import os
    import tempfile

    import onnx

    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        try:
            t.booster.save_model(path, format="onnx")
        except Exception as err:  # noqa: BLE001 -- CatBoost's own reason, e.g. categorical features
            raise ModelDirError(str(err).strip().splitlines()[0]) from err
        model = onnx.load(path)
    finally:
        os.unlink(path)
    if regression:
        return model, model.graph.output[0].name
    zipmap = next(n for n in model.graph.node if n.op_type == "ZipMap")  # its input: the probabilities tensor
    model.graph.node.remove(zipmap)
    del model.graph.output[:]
    return model, zipmap.input[0]


def _ensemble(e: Any, width: int, opset: int) -> Any:
    """``hone auto``'s ensemble: the members' outputs (a bag's the mean of its fold models) weighted and
    summed, in the target's scale for numbers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from hone.errors import ModelDirError

    task = e.pre.schema.task
    k = 1 if task == "regression" else len(e.pre.schema.classes)
    layout = e.layout(width)
    nodes: list[Any] = []
    inits: list[Any] = []
    opsets: dict[str, int] = {"": opset}
    terms: list[tuple[str, float]] = []
    cannot: list[str] = []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    sliced: set[str] = set()

    def columns(part: str) -> str:
        out = f"e_{part}"
        if out not in sliced:
            sliced.add(out)
            lo, hi = layout[part]
            nodes.append(helper.make_node("Slice", ["baseline", const(f"{out}_lo", [lo], np.int64),
                                                   const(f"{out}_hi", [hi], np.int64),
                                                   const(f"{out}_axis", [1], np.int64)], [out]))
        return out

    for i, (m, w) in enumerate(zip(e.members, e.weights)):
        if w <= 0:
            continue
        if m.linear is not None:
            nodes += _linear_member(m.linear, columns(m.reads), f"m{i}/", task, const)
            terms.append((f"m{i}/out", float(w)))
            continue
        part = "embeddings" if m.reads == "embeddings" else "dense"  # the backbone's embeddings follow the rest
        x = columns(part)
        lo, hi = layout[part]
        for j, t in enumerate(m.trees):
            try:
                sub, produced = _tree(t, hi - lo, opset)
            except ModelDirError as err:
                cannot.append(f"{m.name} ({err})")
                break
            p = f"m{i}.{j}/"
            sub = onnx.compose.add_prefix(sub, p)
            nodes.append(helper.make_node("Identity", [x], [sub.graph.input[0].name]))
            nodes += list(sub.graph.node)
            inits += list(sub.graph.initializer)
            for o in sub.opset_import:
                if o.domain not in ("", "ai.onnx"):
                    opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
            terms.append((p + produced, float(w) / len(m.trees)))
    if cannot:
        able = [m.name for m, w in zip(e.members, e.weights) if w > 0 and not any(c.startswith(m.name + " (")
                                                                                  for c in cannot)]
        raise ModelDirError(
            f"hone auto's ensemble has members without an ONNX graph: {'; '.join(cannot)}"
            + (f" (these convert: {', '.join(able)})" if able else "")
            + "; score it with the default runtime, or refit with --families leaving those out")
    shape = const("e_shape", [-1, k], np.int64)
    weighted = []
    for idx, (name, w) in enumerate(terms):
        nodes += [helper.make_node("Reshape", [name, shape], [f"e_t{idx}"]),
                  helper.make_node("Mul", [f"e_t{idx}", const(f"e_w{idx}", [w])], [f"e_wt{idx}"])]
        weighted.append(f"e_wt{idx}")
    nodes.append(helper.make_node("Sum", weighted, ["e_sum"]))
    if task == "regression":
        mean, std = float(e.pre.target_mean), float(e.pre.target_std)
        nodes += [helper.make_node("Mul", ["e_sum", const("e_std", [std])], ["e_scaled"]),
                  helper.make_node("Add", ["e_scaled", const("e_mean", [mean])], ["e_val"]),
                  helper.make_node("Reshape", ["e_val", const("e_flat", [-1], np.int64)], ["base_out"])]
    else:
        nodes.append(helper.make_node("Identity", ["e_sum"], ["base_out"]))
    inp = helper.make_tensor_value_info("baseline", TensorProto.FLOAT, [None, width])
    out = helper.make_tensor_value_info("base_out", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "ensemble", [inp], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])


def _linear_member(fit: Any, x: str, p: str, task: str, const: Any) -> list[Any]:
    """A linear member's nodes, reading ``x`` and writing ``{p}out`` (as :func:`linear_scores` scores)."""
    from onnx import helper

    nodes = [helper.make_node("MatMul", [x, const(p + "coef", fit.coef.T.astype(np.float32))], [p + "xw"]),
             helper.make_node("Add", [p + "xw", const(p + "b", fit.intercept.astype(np.float32))], [p + "z"])]
    if task == "multiclass":
        nodes.append(helper.make_node("Softmax", [p + "z"], [p + "out"], axis=1))
    elif task == "binary":
        nodes += [helper.make_node("Sigmoid", [p + "z"], [p + "p"]),
                  helper.make_node("Sub", [const(p + "one", [1.0]), p + "p"], [p + "q"]),
                  helper.make_node("Concat", [p + "q", p + "p"], [p + "out"], axis=1)]
    else:
        nodes.append(helper.make_node("Identity", [p + "z"], [p + "out"]))
    return nodes
