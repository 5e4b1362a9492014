"""The chosen model as one ONNX graph: network, baseline, blend, temperature and decision rule.

* the network (text encoders with masked mean pooling, numeric and categorical encoders, head) is
  exported from PyTorch with dynamic batch and token axes; its output is the softmax (or, for
  regression, the value in the target's scale);
* the baseline, when the chosen model uses it, is converted by :mod:`hone.onnx.baseline`
  (LightGBM through onnxmltools, or the TF-IDF linear model) and reads its feature matrix from
  the input ``baseline``;
* the tail does what :meth:`Decision.combine` and :meth:`Decision.predict` do: the blend
  ``w * network + (1 - w) * baseline``, the temperature ``softmax(log(p) / T)``, and the decision
  rule (binary threshold, prior correction factors or argmax) as a second output ``label`` (the
  class index).

Outputs: ``output`` (probabilities ``[B, K]`` or values ``[B]``) and, for classification, ``label``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from hone.onnx import Exportable
from hone.onnx.sessions import flatten

OPSET = 17
BASELINE_PREFIX = "baseline/"


class _Network(nn.Module):
    """The network with flat tensor inputs: softmax probabilities, or values in the target's scale."""

    def __init__(self, model: Exportable, structure: dict[str, Any]) -> None:
        super().__init__()
        self.net = model.net
        self.structure = structure  # modality -> list of text columns, or None for a single tensor
        self.regression = model.task == "regression"
        self.mean, self.std = float(model.pre.target_mean), float(model.pre.target_std)

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
        return torch.softmax(out, dim=1)


def build(model: Exportable, sample: pa.Table, workdir: Path) -> tuple[Any, dict[str, Any]]:
    """The whole chosen model as an ONNX ``ModelProto``, and a description (inputs, structure, parts)."""
    import onnx
    from onnx import helper

    dec = model.decision
    nodes, inputs, inits, opsets = [], [], [], {"": OPSET}
    info: dict[str, Any] = {"parts": []}
    if dec.uses_network:
        net = _network(model, sample, workdir / "network.onnx", info)
        nodes += list(net.graph.node)
        inputs += list(net.graph.input)
        inits += list(net.graph.initializer)
        info["parts"].append("network")
    if dec.uses_baseline and model.baseline is not None:
        from hone.onnx.baseline import baseline_graph

        width = model.baseline.features(sample.slice(0, 1)).shape[1]
        base = onnx.compose.add_prefix(baseline_graph(model.baseline, width, OPSET), BASELINE_PREFIX,
                                       rename_inputs=False, rename_outputs=False)
        for i, n in enumerate(base.graph.node):  # named, so that int8 can leave the baseline alone
            n.name = n.name or f"{BASELINE_PREFIX}{i}_{n.op_type}"
        nodes += list(base.graph.node)
        inputs += list(base.graph.input)
        inits += list(base.graph.initializer)
        for o in base.opset_import:
            opsets[o.domain] = max(opsets.get(o.domain, 0), o.version)
        info["parts"].append(f"baseline ({model.baseline.kind})")
    tail, tail_inits, outputs = _tail(model)
    graph = helper.make_graph(nodes + tail, "hone", inputs, outputs, inits + tail_inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="hone")
    proto.ir_version = min(proto.ir_version, 9)  # readable by ONNX Runtime releases of the past two years
    info["inputs"] = [i.name for i in inputs]
    info["outputs"] = [o.name for o in outputs]
    onnx.checker.check_model(proto)
    return proto, info


def _network(model: Exportable, sample: pa.Table, path: Path, info: dict[str, Any]) -> Any:
    import onnx

    model.net.eval()
    inputs = model.pre.inputs(sample.slice(0, min(8, sample.num_rows)), "cpu")
    names, tensors = flatten(inputs)
    structure = {m: (list(v) if isinstance(v, dict) else None) for m, v in inputs.items()}
    # each text column has its own token axis (a batch pads each column to its own longest text)
    dynamic = {n: ({0: "batch", 1: "tokens_" + n.rsplit("_", 1)[0]} if n.endswith(("_ids", "_mask")) else {0: "batch"})
               for n in names}
    dynamic["net_out"] = {0: "batch"}
    with torch.inference_mode():
        torch.onnx.export(_Network(model, structure).eval(), tuple(tensors), str(path), input_names=names,
                          output_names=["net_out"], dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    info["structure"] = structure
    return onnx.load(str(path))


def _tail(model: Exportable) -> tuple[list[Any], list[Any], list[Any]]:
    """Blend, temperature and decision rule: nodes, constants and the graph outputs."""
    from onnx import TensorProto, helper, numpy_helper

    dec = model.decision
    regression = model.task == "regression"
    nodes, inits = [], []

    def const(name: str, value: Any, dtype: Any = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    if dec.model == "blend":
        w = float(dec.blend_weight)
        nodes += [helper.make_node("Mul", ["net_out", const("t_w", w)], ["t_a"]),
                  helper.make_node("Mul", ["base_out", const("t_1w", 1.0 - w)], ["t_b"]),
                  helper.make_node("Add", ["t_a", "t_b"], ["t_mix"])]
    else:
        nodes.append(helper.make_node("Identity", ["net_out" if dec.model == "network" else "base_out"], ["t_mix"]))
    if regression:
        nodes.append(helper.make_node("Identity", ["t_mix"], ["output"]))
        return nodes, inits, [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch"])]
    t = float(dec.temperature or 1.0)
    if t == 1.0:
        nodes.append(helper.make_node("Identity", ["t_mix"], ["output"]))
    else:  # softmax(log(clip(p, 1e-12, 1)) / T), as apply_temperature
        nodes += [helper.make_node("Clip", ["t_mix", const("t_lo", 1e-12), const("t_hi", 1.0)], ["t_clip"]),
                  helper.make_node("Log", ["t_clip"], ["t_log"]),
                  helper.make_node("Mul", ["t_log", const("t_invT", 1.0 / t)], ["t_z"]),
                  helper.make_node("Softmax", ["t_z"], ["output"], axis=1)]
    if dec.threshold is not None:
        nodes += [helper.make_node("Gather", ["output", const("t_pos", 1, np.int64)], ["t_p1"], axis=1),
                  helper.make_node("GreaterOrEqual", ["t_p1", const("t_thr", float(dec.threshold["threshold"]))],
                                   ["t_ge"]),
                  helper.make_node("Cast", ["t_ge"], ["label"], to=TensorProto.INT64)]
    elif dec.class_factors is not None:
        nodes += [helper.make_node("Mul", ["output", const("t_factors", dec.class_factors)], ["t_scaled"]),
                  helper.make_node("ArgMax", ["t_scaled"], ["label"], axis=1, keepdims=0)]
    else:
        nodes.append(helper.make_node("ArgMax", ["output"], ["label"], axis=1, keepdims=0))
    k = len(model.classes)
    return nodes, inits, [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", k]),
                          helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])]
