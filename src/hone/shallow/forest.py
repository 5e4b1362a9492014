"""Random forests and extra trees for ``hone auto`` (scikit-learn's, fitted with bootstrap samples), kept
as plain arrays: saved with safetensors (never pickle), scored and explained in numpy, exported as an
ONNX ``TreeEnsemble``.

Why a forest beside the boosted trees: on some tables (modeldata/hpc_data, a multiclass table of
4,331 rows) fully grown, decorrelated trees validate better than any boosting configuration, and they
add a different kind of error to the ensemble. AutoGluon's zero-shot portfolio carries both (its
``RF`` and ``XT`` with 300 trees); so does this one, with the same size.

Every tree grows from a bootstrap sample of the training and validation rows together; a row's
out-of-bag outputs (the mean of the trees whose sample missed it) are its out-of-fold outputs, as a
k-fold bag's would be, at no extra fitting (Breiman 2001; AutoGluon uses the same shortcut).

Missing values (NaN) and infinities become ``-1e30`` / ``1e30`` before fitting and scoring, in both
runtimes: a missing value sorts below every threshold and goes to the left child.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

TREES = 300
CHUNK = 25  # trees grown between two looks at the deadline
MAX_LEAVES = 15_000  # per tree, as AutoGluon's: bounds a forest's size on bigger tables
MIN_TREES = 50  # a forest the deadline stopped with fewer trees is not kept
_BIG = 1e30
CONFIGS: list[dict[str, Any]] = [
    {"name": "random-forest", "params": {"extra": False}},
    {"name": "extra-trees", "params": {"extra": True}},
]


def _clean(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(x, dtype=np.float32), nan=-_BIG, posinf=_BIG, neginf=-_BIG)


@dataclass
class Forest:
    """The trees of a fitted forest, flattened: node ``i`` tests ``x[feature[i]] <= threshold[i]`` and goes
    to ``left[i]`` or ``right[i]``; a leaf points to itself. ``value[i]`` is the node's output (class
    fractions ``[K]``, or the value ``[1]``); ``roots`` are the trees' first nodes."""

    feature: np.ndarray  # int32 [nodes]
    threshold: np.ndarray  # float32 [nodes]
    left: np.ndarray  # int32 [nodes]
    right: np.ndarray  # int32 [nodes]
    value: np.ndarray  # float32 [nodes, K]
    roots: np.ndarray  # int32 [trees]

    def __post_init__(self) -> None:
        n = len(self.feature)
        for name in ("threshold", "left", "right", "value"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"forest arrays disagree: {name} has {len(getattr(self, name))} nodes, not {n}")
        for name in ("left", "right", "roots"):
            a = getattr(self, name)
            if a.size and (a.min() < 0 or a.max() >= n):
                raise ValueError(f"forest array {name} points outside its {n} nodes")
        self.leaf = self.left == np.arange(n)

    @property
    def trees(self) -> int:
        return len(self.roots)

    @property
    def width(self) -> int:
        """The number of features it reads (at least; the highest feature index + 1)."""
        return int(self.feature.max()) + 1 if self.feature.size else 0

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row reaches in each tree: ``[N, trees]`` node indices."""
        x = _clean(x)
        n, f = x.shape
        if self.feature.size and self.width > f:
            raise ValueError(f"the forest reads {self.width} features, the rows have {f}")
        node = np.tile(self.roots, n)
        row_base = np.repeat(np.arange(n, dtype=np.int64) * f, self.trees)
        flat = x.ravel()
        active = np.flatnonzero(~self.leaf[node])
        while active.size:
            at = node[active]
            go_left = flat[row_base[active] + self.feature[at]] <= self.threshold[at]
            nxt = np.where(go_left, self.left[at], self.right[at])
            node[active] = nxt
            active = active[~self.leaf[nxt]]
        return node.reshape(n, self.trees)

    def predict(self, x: np.ndarray, rows: int = 4096) -> np.ndarray:
        """The trees' mean output: ``[N, K]`` (class fractions, or ``[N, 1]`` values)."""
        out = np.empty((len(x), self.value.shape[1]), dtype=np.float64)
        for lo in range(0, len(x), rows):
            leaves = self.leaves(x[lo:lo + rows])
            out[lo:lo + rows] = self.value[leaves].mean(axis=1)
        return out

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Saabas contributions (each split's change of the node's output, credited to its feature),
        averaged over the trees: ``[N, K, F + 1]``, the last column the root's output; each row's sum over
        features and root is exactly :meth:`predict`'s output."""
        x = _clean(x)
        n, f = x.shape
        k = self.value.shape[1]
        out = np.zeros((n, k, f + 1), dtype=np.float64)
        out[:, :, f] = self.value[self.roots].mean(axis=0)
        node = np.tile(self.roots, n)
        rows = np.repeat(np.arange(n, dtype=np.int64), self.trees)
        flat = x.ravel()
        active = np.flatnonzero(~self.leaf[node])
        acc = np.zeros((n * f, k), dtype=np.float64)
        while active.size:
            at = node[active]
            feat = self.feature[at]
            go_left = flat[rows[active] * f + feat] <= self.threshold[at]
            nxt = np.where(go_left, self.left[at], self.right[at])
            np.add.at(acc, rows[active] * f + feat, self.value[nxt] - self.value[at])
            node[active] = nxt
            active = active[~self.leaf[nxt]]
        out[:, :, :f] = (acc / self.trees).reshape(n, f, k).transpose(0, 2, 1)
        return out

    # -- persistence: arrays ---------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {"feature": self.feature, "threshold": self.threshold, "left": self.left, "right": self.right,
                "value": self.value, "roots": self.roots}

    def to_bytes(self) -> bytes:
        from safetensors.numpy import save

        return save({k: np.ascontiguousarray(v) for k, v in self.arrays().items()})

    @classmethod
    def from_bytes(cls, data: bytes) -> Forest:
        from safetensors.numpy import load

        a = load(data)
        return cls(a["feature"].astype(np.int32), a["threshold"].astype(np.float32), a["left"].astype(np.int32),
                   a["right"].astype(np.int32), a["value"].astype(np.float32), a["roots"].astype(np.int32))

    @classmethod
    def from_sklearn(cls, estimators: list[Any], task: str) -> Forest:
        feats, thrs, lefts, rights, values, roots = [], [], [], [], [], []
        at = 0
        for est in estimators:
            t = est.tree_
            n = t.node_count
            ids = np.arange(n)
            leaf = t.children_left < 0
            left = np.where(leaf, ids, t.children_left) + at
            right = np.where(leaf, ids, t.children_right) + at
            v = np.asarray(t.value[:, 0, :], dtype=np.float64)  # [nodes, K] (classes) or [nodes, 1]
            if task != "regression":
                v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-12)
            feats.append(np.where(leaf, 0, t.feature).astype(np.int32))
            thrs.append(_down(np.where(leaf, 0.0, t.threshold)))
            lefts.append(left.astype(np.int32))
            rights.append(right.astype(np.int32))
            values.append(v.astype(np.float32))
            roots.append(at)
            at += n
        return cls(np.concatenate(feats), np.concatenate(thrs), np.concatenate(lefts), np.concatenate(rights),
                   np.concatenate(values), np.asarray(roots, dtype=np.int32))


def _down(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 at most each (float64) threshold: for float32 features, ``x <= t`` and
    ``x <= _down(t)`` agree, so numpy and ONNX Runtime (float32 thresholds) split exactly as scikit-learn."""
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def fit_forest(params: dict[str, Any], x: np.ndarray, y: np.ndarray, task: str, n_classes: int, *, seed: int = 0,
               threads: int = 0, deadline: float | None = None, trees: int = TREES) -> tuple[Forest | None, np.ndarray,
                                                                                           dict[str, Any]]:
    """A forest of ``trees`` trees on ``x`` (training and validation rows together), grown ``CHUNK`` at a
    time until ``deadline`` (``time.monotonic()``); returns it (None when the deadline left fewer than
    ``MIN_TREES``), the out-of-bag outputs of every row ``[N, K]`` (``[N]`` for numbers) and what to
    record."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    regression = task == "regression"
    extra = bool(params.get("extra"))
    kind: Any = {(False, False): RandomForestClassifier, (False, True): RandomForestRegressor,
                 (True, False): ExtraTreesClassifier, (True, True): ExtraTreesRegressor}[(extra, regression)]
    t0 = time.perf_counter()
    xc = _clean(x)
    model = kind(n_estimators=0, bootstrap=True, warm_start=True, random_state=seed, n_jobs=threads or -1,
                 max_features=1.0 if regression else "sqrt", max_leaf_nodes=MAX_LEAVES)
    stopped = False
    while model.n_estimators < trees:
        model.n_estimators = min(trees, model.n_estimators + CHUNK)
        model.fit(xc, y)
        if deadline is not None and time.monotonic() >= deadline and model.n_estimators < trees:
            stopped = True
            break
    info: dict[str, Any] = {"trees": int(model.n_estimators), "extra_trees": extra, "stopped_by_deadline": stopped}
    if model.n_estimators < MIN_TREES:
        info["fit_seconds"] = round(time.perf_counter() - t0, 3)
        return None, np.zeros(0), info
    forest = Forest.from_sklearn(model.estimators_, task)
    if not regression and len(model.classes_) < n_classes:  # a class never seen: its fraction is zero
        full = np.zeros((len(forest.value), n_classes), dtype=np.float32)
        full[:, np.asarray(model.classes_, dtype=np.int64)] = forest.value
        forest.value = full
    oob = _out_of_bag(forest, model.estimators_samples_, xc)
    info["fit_seconds"] = round(time.perf_counter() - t0, 3)
    return forest, (oob[:, 0] if regression else oob), info


def _out_of_bag(forest: Forest, samples: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """Each row's mean output over the trees whose bootstrap sample missed it (all trees' mean for the rare
    row every sample drew)."""
    n = len(x)
    leaves = forest.leaves(x)  # [N, trees]
    total = np.zeros((n, forest.value.shape[1]))
    count = np.zeros(n)
    for t, drawn in enumerate(samples):
        out = np.ones(n, dtype=bool)
        out[drawn] = False
        total[out] += forest.value[leaves[out, t]]
        count[out] += 1
    every = forest.value[leaves].mean(axis=1)
    seen = count > 0
    total[seen] /= count[seen, None]
    total[~seen] = every[~seen]
    return total


def forest_onnx(forest: Forest, task: str, width: int, opset: int) -> tuple[Any, str]:
    """An ONNX model reading ``x`` ``[N, width]`` that outputs the forest's mean (probabilities ``[N, K]`` or
    values ``[N, 1]``), and the name of that output: one ``TreeEnsembleRegressor`` (``ai.onnx.ml``) with
    every class fraction as a target, averaged; missing values replaced as in fitting."""
    from onnx import TensorProto, helper, numpy_helper

    k = forest.value.shape[1]
    n = len(forest.feature)
    tree_of = np.zeros(n, dtype=np.int64)
    tree_of[forest.roots[1:]] = 1
    tree_of = np.cumsum(tree_of)
    local = np.arange(n) - forest.roots[tree_of]
    leaf = forest.leaf
    leaves = np.flatnonzero(leaf)
    attrs: dict[str, Any] = {
        "n_targets": k, "aggregate_function": "AVERAGE", "post_transform": "NONE",
        "nodes_treeids": tree_of.tolist(), "nodes_nodeids": local.tolist(),
        "nodes_featureids": forest.feature.astype(np.int64).tolist(),
        "nodes_modes": ["LEAF" if b else "BRANCH_LEQ" for b in leaf],
        "nodes_truenodeids": np.where(leaf, 0, forest.left - forest.roots[tree_of]).tolist(),
        "nodes_falsenodeids": np.where(leaf, 0, forest.right - forest.roots[tree_of]).tolist(),
        "target_treeids": np.repeat(tree_of[leaves], k).tolist(),
        "target_nodeids": np.repeat(local[leaves], k).tolist(),
        "target_ids": np.tile(np.arange(k), len(leaves)).tolist(),
    }
    attrs["nodes_values_as_tensor"] = numpy_helper.from_array(np.where(leaf, 0, forest.threshold).astype(np.float32),
                                                              "")
    attrs["target_weights_as_tensor"] = numpy_helper.from_array(forest.value[leaves].astype(np.float32).ravel(), "")
    big = numpy_helper.from_array(np.array([-_BIG], np.float32), "big")
    nodes = [helper.make_node("IsNaN", ["x"], ["nan"]),
             helper.make_node("Where", ["nan", "big", "x"], ["x_filled"]),
             helper.make_node("Clip", ["x_filled", "lo", "hi"], ["x_clean"]),
             helper.make_node("TreeEnsembleRegressor", ["x_clean"], ["forest_out"], domain="ai.onnx.ml", **attrs)]
    inits = [big, numpy_helper.from_array(np.array(-_BIG, np.float32), "lo"),
             numpy_helper.from_array(np.array(_BIG, np.float32), "hi")]
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])
    out = helper.make_tensor_value_info("forest_out", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "forest", [inp], [out], inits)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", 3)]
    return helper.make_model(graph, opset_imports=opsets), "forest_out"
