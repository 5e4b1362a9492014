"""The run folder a federation leaves: the same model package and run files as ``hone fit``, so
predict, evaluate, export, explain and serve work unchanged, plus the federation's own record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hone._logging import get_logger
from hone.config import dump_yaml

logger = get_logger("hone.federate")


def finish(outcome: Any, stage: Path, *, pooled_paths: dict[str, Path] | None = None, test: Any = None,
           started: float | None = None) -> dict[str, Any]:
    """Save ``stage/model`` and return the run files to write.

    ``pooled_paths``: the union of the silos' split files (a simulation, where every silo is on this
    machine): the decision rule, calibration and the test metrics with their bootstrap intervals come from
    them, as for ``hone fit`` (the network is what predicts: there is no pooled baseline to fit). Without
    them (a deployment) the metrics are the federated ones, from the silos' confusion matrices or sums;
    ``test``: a labelled table the server holds, scored once at the end."""
    from hone.train.optim import class_weights

    model, rcfg, record = outcome.model, outcome.rcfg, outcome.record
    schema = model.pre.schema
    weights = None
    if schema.task != "regression":
        w, _ = class_weights([model.pre.class_counts.get(str(c), 0) for c in schema.classes], rcfg.train.class_weights)
        weights = w.numpy() if w is not None else None
    rcfg = rcfg.model_copy(
        update={"evaluate": rcfg.evaluate.model_copy(update={"model": "network", "baseline": False})}
    )
    report: dict[str, Any] = {}
    metrics: dict[str, Any] = {"validation": record.get("validation", {}), "test": record.get("test", {})}
    if pooled_paths:
        from hone.pipeline.after import choose_and_score

        report = choose_and_score(model, pooled_paths, rcfg, weights)
        metrics = {s: report.pop(s) for s in ("validation", "test") if s in report}
    elif test is not None:
        metrics["test"] = model.evaluate(test)
        metrics["test_source"] = "the server's own held-out table"
    rounds = outcome.history
    training = {"federated": True, "strategy": rcfg.model.strategy, "preset": rcfg.preset,
                "rounds": record["rounds"], "clients": record["clients"], "rows": record["rows"],
                "epochs_run": len(rounds), "steps": len(rounds), "best_epoch": len(rounds),
                "stop_reason": "completed", "precision": rcfg.train.precision,
                "train_seconds": round(float(np.sum([r["seconds"] for r in rounds])), 2),
                "total_seconds": round(time.time() - started, 2) if started else None}
    model.meta = {"task": schema.task, "target": schema.target, "classes": schema.classes,
                  "config": rcfg.model_dump(mode="json"), "training": training,
                  "metrics": {**metrics, **{k: v for k, v in report.items() if k != "figures"}},
                  "history": rounds, "data_fingerprint": {"federated": True, "silos": record["silos"]}}
    model.save(stage / "model")
    return {"config.resolved.yaml": dump_yaml(rcfg),
            "metrics.json": {**metrics, **report, "training": training, "federated": record},
            "schema.json": schema.to_dict(), "history.json": rounds, "federated.json": record}


def write_run(stage: Path, files: dict[str, Any], name: str, started: float, command: list[str] | None = None) -> None:
    """The run files, ``environment.json`` (``command``: the command line it records) and ``report.html``
    into ``stage`` (each written atomically)."""
    from hone._provenance import environment
    from hone.pipeline.runs import write_run as write_files

    write_files(stage, name, {**files, "environment.json": environment(started, command)})
