"""After training: fit the baseline, choose network / baseline / blend on validation, calibrate,
set the decision rule, and score everything once on test with bootstrap intervals."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hone._logging import get_logger
from hone.artifact import Model
from hone.config import ResolvedRunConfig
from hone.data.batches import iter_batches
from hone.errors import DataError
from hone.evaluation.bootstrap import bootstrap
from hone.evaluation.choice import Decision, decide
from hone.evaluation.metrics import HIGHER_IS_BETTER, classification_metrics, regression_metrics
from hone.models.baseline import Baseline, fit_baseline
from hone.models.inference import iter_outputs
from hone.pipeline.budget import Planner

logger = get_logger("hone.fit")
HEADLINE = {"binary": ("macro_f1", "accuracy", "roc_auc", "pr_auc"), "multiclass": ("macro_f1", "accuracy"),
            "regression": ("rmse", "mae", "r2")}


def collect(model: Model, pairs: Iterable[tuple[pa.Table, np.ndarray]], *, target_scale: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
    """Targets and outputs over ``(batch, outputs)`` pairs; regression targets in their own scale
    (like the outputs) unless ``target_scale`` is false (the standardised scale of ``Model.score``)."""
    ys, outs = [], []
    for batch, out in pairs:
        ys.append(model.pre.targets(batch))
        outs.append(out)
    y = np.concatenate(ys)
    if model.task == "regression" and target_scale:
        y = y * model.pre.target_std + model.pre.target_mean
    return y, np.concatenate(outs)


def _metrics(model: Model, d: Decision, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    if model.task == "regression":
        return regression_metrics(y, out)
    return classification_metrics(y, out, model.classes, pred=d.predict(out))


def choose_and_score(model: Model, paths: dict[str, Path], cfg: ResolvedRunConfig,
                     class_weights: np.ndarray | None, *, planner: Planner | None = None,
                     prefit: Baseline | None = None) -> dict[str, Any]:
    """Fit the baseline (or take ``prefit``, the one a time-limited ``planner`` fitted before the
    network), set ``model.decision`` and ``model.baseline``; returns the metrics.json parts."""
    ev, task = cfg.evaluate, model.task
    planner = planner or Planner()

    def net_outputs(path: Path) -> tuple[np.ndarray, np.ndarray]:
        return collect(model, iter_outputs(model.net, model.pre, iter_batches(path, 256), precision=model.precision,
                                            device=model.device))

    t0 = time.perf_counter()
    y_val, net_val = net_outputs(paths["validation"])
    net_speed = len(y_val) / max(time.perf_counter() - t0, 1e-9)
    y_test, net_test = net_outputs(paths["test"]) if "test" in paths else (None, None)
    base_val = base_test = None
    baseline_seconds = 0.0
    if planner.prefits:
        model.baseline = planner.beside_network(prefit, net_val)
        baseline_seconds = planner.clock.stages.get("baseline", 0.0)
    elif ev.baseline:
        t0 = time.perf_counter()
        try:
            model.baseline = fit_baseline(model.pre, paths["train"], paths["validation"], seed=cfg.train.seed,
                                          threads=cfg.train.num_threads)
        except Exception as err:  # noqa: BLE001 -- the baseline is a reference, not the product: a table it
            # cannot handle (no usable word in the text, LightGBM refusing degenerate data) must not fail the fit
            if ev.model in ("baseline", "blend"):
                raise DataError(f"evaluate.model {ev.model!r}: the baseline cannot be fitted on this table: "
                                f"{str(err).splitlines()[0]}") from err
            logger.warning("no baseline for this table (%s: %s); the network is evaluated alone",
                           type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            model.baseline = None
        baseline_seconds = time.perf_counter() - t0
    if model.baseline is not None:
        base_val = planner.baseline_validation() if planner.prefits else None
        if base_val is None:
            _, base_val = collect(model, model.baseline.iter_outputs(iter_batches(paths["validation"], 4096)))
        if "test" in paths:
            _, base_test = collect(model, model.baseline.iter_outputs(iter_batches(paths["test"], 4096)))
    requested = planner.requested_model(ev.model, net_speed)
    chosen, candidates = decide(task, y_val, net_val, base_val, requested=requested, metric=cfg.train.metric,
                                threshold_objective=ev.threshold_objective, calibrate=ev.calibrate,
                                class_weights=class_weights)
    rule_on = _baseline_rule(planner, candidates, task, cfg, class_weights)
    model.decision = chosen
    out: dict[str, Any] = {"validation": _metrics(model, chosen, y_val, chosen.combine(net_val, base_val))}
    logger.info("model: %s (%s)", chosen.model, chosen.why)
    summary: dict[str, Any] = {
        "chosen": chosen.model,
        "why": chosen.why,
        "validation": chosen.validation.get("candidates"),
        "blend_weight": chosen.blend_weight if chosen.model == "blend" else None,
        "baseline": model.baseline.kind if model.baseline else None,
        "baseline_seconds": round(baseline_seconds, 2),
        "network_rows_per_second": round(net_speed, 1),
    }
    out["model"] = summary
    if task != "regression":
        out["calibration"] = {"temperature": chosen.temperature, "ece_before": chosen.validation.get("ece_before"),
                              "ece_after": chosen.validation.get("ece_after"),
                              "on": rule_on if chosen.model == "baseline" else "validation"}
    out["threshold"] = chosen.threshold
    if y_test is None:
        return out
    chosen_test = chosen.combine(net_test, base_test)
    out["test"] = _metrics(model, chosen, y_test, chosen_test)
    assert net_test is not None
    out["figures"] = _figures(model, paths["test"], cfg, chosen, y_test, chosen_test, net_test, base_test)
    scored = {"network": candidates["network"]}
    if "baseline" in candidates:
        scored["baseline"] = candidates["baseline"]
    tests = {n: d.combine(net_test, base_test) for n, d in scored.items()}
    for n, d in scored.items():
        out[n] = _metrics(model, d, y_test, tests[n])
    if ev.bootstrap:
        names = list(tests)  # network, and baseline when there is one
        decisions = [(chosen, chosen_test)] + [(scored[n], tests[n]) for n in names]
        res = bootstrap(task, y_test, [o for _, o in decisions],
                        preds=[None if task == "regression" else d.predict(o) for d, o in decisions],
                        n=ev.bootstrap, level=ev.level, seed=cfg.data.split.seed,
                        pairs=[(1, 2)] if "baseline" in tests else [])
        out["intervals"] = res["models"][0]
        out["intervals_info"] = {"resamples": res["resamples"], "level": res["level"], "method": "percentile bootstrap"}
        if "baseline" in tests:
            out["delta"] = {"compares": "network - baseline", **res["delta"][0]}
            out["verdict"] = verdict(
                task, out["delta"], model.baseline.kind if model.baseline else "baseline", ev.level
            )
    return out


def _baseline_rule(planner: Planner, candidates: dict[str, Decision], task: str, cfg: ResolvedRunConfig,
                   class_weights: np.ndarray | None) -> str:
    """Refit the baseline's calibration and decision rule on the rows the planner offers (a bagged
    ensemble's out-of-fold outputs on every training and validation row, several times the validation
    split); returns the rows it was fitted on, in words."""
    rows = planner.baseline_rule_rows() if "baseline" in candidates and task != "regression" else None
    if rows is None:
        return "validation"
    ev = cfg.evaluate
    again, _ = decide(task, rows[0], None, rows[1], requested="baseline", metric=cfg.train.metric,
                      threshold_objective=ev.threshold_objective, calibrate=ev.calibrate, class_weights=class_weights)
    base = candidates["baseline"]
    base.temperature, base.threshold = again.temperature, again.threshold
    base.validation.update({k: again.validation[k] for k in ("ece_before", "ece_after") if k in again.validation})
    return f"{len(rows[0])} out-of-fold rows"


def _figures(model: Model, test_path: Path, cfg: ResolvedRunConfig, chosen: Decision, y: np.ndarray,
             out: np.ndarray, net: np.ndarray, base: np.ndarray | None) -> dict[str, Any]:
    import dataclasses

    import pyarrow.parquet as pq

    from hone.evaluation.diagnostics import report_figures

    table = pq.read_table(test_path)
    cols = cfg.evaluate.slices
    if cols is None:
        cols = model.pre.schema.names("categorical")[:5]
    cols = [c for c in cols if c in table.column_names]
    pred = None if model.task == "regression" else chosen.predict(out)
    raw = dataclasses.replace(chosen, temperature=1.0).combine(net, base) if model.task != "regression" else None
    return report_figures(table, model.task, model.classes, y, out, pred, cols, raw)


def verdict(task: str, delta: dict[str, Any], baseline_kind: str, level: float) -> str:
    """One plain sentence on whether fine-tuning beat the baseline on test."""
    metric = "rmse" if task == "regression" else "macro_f1"
    d = delta[metric]
    better = HIGHER_IS_BETTER[metric]
    lo, hi = d["ci_low"], d["ci_high"]
    span = f"{d['value']:+.4f} ({100 * level:.0f}% interval {lo:+.4f} to {hi:+.4f})"
    name = {"lightgbm": "the LightGBM baseline", "tfidf-linear": "the TF-IDF + linear baseline",
            "ensemble": "the ensemble of shallow models"}.get(baseline_kind, baseline_kind)
    if not np.isfinite(lo) or not np.isfinite(hi):
        return f"The fine-tuned network and {name} differ by {span} in test {metric}."
    if (lo > 0) if better else (hi < 0):
        return f"The fine-tuned network beats {name} on the test split: {metric} {span}."
    if (hi < 0) if better else (lo > 0):
        return f"The fine-tuned network does not beat {name}: it is worse on the test split, {metric} {span}."
    return (f"The fine-tuned network does not clearly beat {name}: the test {metric} difference {span} "
            "includes zero.")
