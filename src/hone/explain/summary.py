"""The run's ``explain.json``: global importance on the validation split, and a few explained rows
(the most confident errors, then correct predictions) for the report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hone._logging import get_logger
from hone.explain.importance import ShuffledScorer, attribution_summary, permutation_importance
from hone.explain.output import image_uris, inputs_of, steps_summary
from hone.explain.rows import Explainer

logger = get_logger(__name__)
SHOWN = 3  # errors, and correct rows, shown in the report


def _head(path: Path, rows: int) -> pa.Table:
    """The split file's first ``rows`` rows (split files are in hash order: an unbiased sample)."""
    parts, n = [], 0
    for b in pq.ParquetFile(path).iter_batches(batch_size=min(rows, 4096)):
        parts.append(b.slice(0, rows - n))
        n += parts[-1].num_rows
        if n >= rows:
            break
    return pa.Table.from_batches(parts)


def global_explanation(model: Any, valid_path: Path, *, rows: int = 1000, examples: int = 32, level: float = 0.95,
                       seed: int = 0) -> dict[str, Any]:
    """Permutation importance on the first ``rows`` validation rows; attributions of ``examples`` of
    them (the most confident errors first, then a random sample), summarised; a few shown."""
    table = _head(valid_path, rows)
    table = table.filter(table.column(model.target).is_valid())
    if table.num_rows < 10:
        return {"skipped": f"only {table.num_rows} labelled validation rows"}
    scorer = ShuffledScorer(model, table)  # the rows are encoded once, for the importance and the examples
    perm = permutation_importance(model, table, level=level, seed=seed, scorer=scorer)
    out: dict[str, Any] = {"permutation": perm}
    logger.info("permutation importance on %d validation rows in %.1f s: %s", perm["rows"], perm["seconds"],
                ", ".join(f"{c['column']} {c['importance']:+.3f}" for c in perm["columns"][:6]))
    if examples == 0:
        return out
    outputs = scorer.outputs()
    y = model.pre.targets(table)
    if model.task == "regression":
        err = np.abs(outputs - (y * model.pre.target_std + model.pre.target_mean))
        wrong = np.argsort(-err, kind="stable")[:SHOWN]
        right = np.setdiff1d(np.arange(len(y)), wrong)
    else:
        pred = model.decision.predict(outputs)
        conf = outputs[np.arange(len(y)), pred]
        wrong = np.asarray([i for i in np.argsort(-conf, kind="stable") if pred[i] != y[i]][:SHOWN], dtype=np.int64)
        right = np.flatnonzero(pred == y)
    rng = np.random.default_rng(seed)
    sample = rng.permutation(right)[:max(0, examples - len(wrong))]
    chosen = np.asarray(list(wrong) + sorted(sample.tolist()), dtype=np.int64)
    sub = table.take(pa.array(chosen))
    t0 = time.perf_counter()
    explainer = Explainer(model)
    explained = explainer.explain_batch(sub)
    seconds = time.perf_counter() - t0
    steps = steps_summary([r["network"]["steps"] for r in explained if "network" in r])
    out["attribution"] = {
        **attribution_summary(explained, model.pre.schema.names()),
        "steps": steps,
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(explained) / max(seconds, 1e-9), 2),
    }
    uris = image_uris(model, sub.slice(0, SHOWN * 2)) if "image" in model.pre.modalities else None
    shown = []
    n_wrong = len(wrong)
    for j in [*range(n_wrong), *range(n_wrong, min(len(chosen), n_wrong + SHOWN))]:
        truth = sub.column(model.target)[j].as_py()
        kind = "error" if j < n_wrong else "correct"
        shown.append({"title": f"validation row ({kind})", "kind": kind, "truth": truth,
                      "inputs": inputs_of(model, sub, j), "images": uris[j] if uris and j < len(uris) else {},
                      "explanation": explained[j]})
    out["examples"] = shown
    logger.info("explained %d validation rows in %.1f s (%.1f rows/s)", len(explained), seconds,
                len(explained) / max(seconds, 1e-9))
    return out
