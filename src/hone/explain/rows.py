"""Explanations of single predictions, through the model's one interface: the network's Integrated
Gradients (:mod:`hone.explain.network`) and the baseline's exact contributions
(:mod:`hone.explain.baseline`), combined as the chosen model combines them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hone.errors import ConfigError
from hone.explain.baseline import attribute_baseline
from hone.explain.network import NetworkAttribution, NetworkExplainer

ROWS_PER_BATCH = 32


class Explainer:
    """Explains a loaded model's predictions, row by row.

    Args:
        model: a :class:`hone.Model` (any chosen model: network, baseline or blend).
        steps: Integrated Gradients' integration steps, or ``auto`` (doubled until the
            convergence delta is small; see :mod:`hone.explain.network`).
        target_class: explain this class for every row instead of the predicted one.
    """

    def __init__(self, model: Any, *, steps: int | str = "auto", target_class: Any = None) -> None:
        self.model = model
        dec = model.decision
        self.network = (NetworkExplainer(model.net, model.pre, precision=model.precision, steps=steps)
                        if dec.uses_network else None)
        self.target_index = None if target_class is None else class_index(model, target_class)

    def explain_batch(self, batch: pa.Table) -> list[dict[str, Any]]:
        """One explanation per row of an Arrow batch typed as the model's schema (explained
        ``ROWS_PER_BATCH`` rows at a time, sorted by token count so that they pad little)."""
        lengths = self.model.pre.lengths(batch) if batch.num_rows > ROWS_PER_BATCH else None
        order = np.argsort(lengths, kind="stable") if lengths is not None else np.arange(batch.num_rows)
        ordered = batch.take(pa.array(order)) if lengths is not None else batch
        done: list[dict[str, Any]] = []
        for i in range(0, batch.num_rows, ROWS_PER_BATCH):
            done += self._explain(ordered.slice(i, ROWS_PER_BATCH))
        rows: list[dict[str, Any]] = [{}] * batch.num_rows
        for j, i in enumerate(order):
            rows[int(i)] = done[j]
        return rows

    def _explain(self, batch: pa.Table) -> list[dict[str, Any]]:
        model, dec, pre = self.model, self.model.decision, self.model.pre
        regression = model.task == "regression"
        _, out = next(iter(model.outputs([batch])))  # the chosen model's calibrated outputs
        n = batch.num_rows
        if regression:
            target = np.zeros(n, dtype=np.int64)
        elif self.target_index is not None:
            target = np.full(n, self.target_index, dtype=np.int64)
        else:
            target = dec.predict(out)
        net = self.network.attribute(batch, target) if self.network is not None else None
        base = attribute_baseline(model.baseline, batch, target) if dec.uses_baseline else None
        labels = model.labels_for(out)
        rows = []
        for i in range(n):
            r: dict[str, Any] = {"prediction": _plain(labels[i]), "model": dec.model}
            if not regression:
                r["explained_class"] = _plain(model.classes[int(target[i])])
                r["probability"] = float(out[i, int(target[i])])
            if net is not None:
                r["network"] = network_row(pre, batch, net, i)
            if base is not None:
                r["baseline"] = {"kind": model.baseline.kind, "score": float(base.score[i]),
                                 "expected": float(base.expected[i]), "columns": base.columns[i]}
                if base.terms:
                    r["baseline"]["terms"] = [[t, v] for t, v in base.terms[i]]
            r["columns"], r["units"] = combine(r, dec, regression)
            r["how"] = how(dec, regression)
            rows.append(r)
        if net is not None and base is not None and dec.model == "blend":
            self._blend_scale(rows, net, base)
        return rows

    def _blend_scale(self, rows: list[dict[str, Any]], net: NetworkAttribution, base: Any) -> None:
        """A blend mixes probabilities (values, for regression): each part's attributions are
        rescaled to that part's own change of probability from its reference, then weighted."""
        model, w = self.model, self.model.decision.blend_weight
        for i, r in enumerate(rows):
            f_net, f_base = w, 1 - w
            if model.task != "regression":  # the network's score is the class's log-odds: sigmoid gives its probability
                f_net *= _ratio(_sigmoid(net.score[i]) - _sigmoid(net.reference[i]), net.score[i] - net.reference[i])
                f_base *= _ratio(base.probability[i] - base.probability_ref[i], base.score[i] - base.expected[i])
            r["network"]["blend_factor"], r["baseline"]["blend_factor"] = f_net, f_base  # log-odds -> the blend's units
            cols: dict[str, float] = {}
            for factor, part in ((f_net, r["network"]["columns"]), (f_base, r["baseline"]["columns"])):
                for k, v in part.items():
                    cols[k] = cols.get(k, 0.0) + factor * v
            r["columns"] = cols


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if abs(den) > 1e-9 else 0.0


def class_index(model: Any, target_class: Any) -> int:
    """The index of a class given by its label (or the label's text)."""
    if model.task == "regression":
        raise ConfigError("--target-class is for classification models; this one does regression")
    names = [str(c) for c in model.classes]
    if str(target_class) not in names:
        raise ConfigError(f"--target-class {target_class!r} is not a class of this model; its classes are: "
                          f"{', '.join(map(repr, model.classes))}")
    return names.index(str(target_class))


def network_row(pre: Any, batch: pa.Table, net: NetworkAttribution, i: int) -> dict[str, Any]:
    """Row ``i``'s network attributions per input column, and what each modality shows with them
    (text: ``words``; images: ``images``, their maps)."""
    cols: dict[str, float] = {}
    r: dict[str, Any] = {"score": float(net.score[i]), "reference": float(net.reference[i]),
                         "delta": float(net.delta[i]), "steps": int(net.steps[i])}
    for modality, attributions in net.parts.items():
        c, shown = pre.modalities[modality].explain_row(attributions, batch, i)
        cols.update(c)
        for key, value in shown.items():
            r.setdefault(key, {}).update(value)
    r["columns"] = {c: cols[c] for c in pre.schema.names() if c in cols}
    return r


def combine(r: dict[str, Any], dec: Any, regression: bool) -> tuple[dict[str, float], str]:
    """The chosen model's attribution per column and its units (blends are rescaled afterwards)."""
    if dec.model == "network":
        return dict(r["network"]["columns"]), "value" if regression else "log-odds"
    if dec.model == "baseline":
        return dict(r["baseline"]["columns"]), "value" if regression else "baseline score"
    return {}, "value" if regression else "probability"


def how(dec: Any, regression: bool) -> str:
    """How the parts of the chosen model combine, in words."""
    net = (
        "network: Integrated Gradients of its "
        + ("predicted value" if regression else "log-odds of the explained class")
        + ", from a reference with no information (text tokens [PAD], numbers at their training mean, categories "
        "unknown, images at the mean colour); they add up to score - reference within delta"
    )
    base = ("baseline: its exact contributions (LightGBM SHAP values, pred_contrib; TF-IDF + linear: coefficient x "
            "tf-idf) to its raw score, which they add up to with the expected value")
    if dec.model == "network":
        return net + "."
    if dec.model == "baseline":
        return base + "."
    w = dec.blend_weight
    return (f"blend: {'value' if regression else 'probability'} = {w:.2f} x network + {1 - w:.2f} x baseline"
            + ("" if regression else f", calibrated with temperature {dec.temperature:.3g}") + f". {net}; {base}. "
            "'columns' weights both parts, each rescaled to its own change of "
            + ("value." if regression else "probability from its reference."))


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


