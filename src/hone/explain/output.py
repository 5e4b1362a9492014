"""Explanations written out: a Parquet table (one row per explained row, flat columns for the usual
questions plus the whole explanation as JSON) or a self-contained HTML page of row views."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hone._io import atomic_path
from hone._logging import get_logger
from hone.errors import DataError
from hone.pages.attributions import page, png_uri, row_view

logger = get_logger(__name__)
HTML_ROWS = 500  # an HTML page shows at most this many rows (the Parquet file has them all)
_WORD = pa.struct([("word", pa.string()), ("attribution", pa.float64()), ("start", pa.int32()), ("end", pa.int32())])


def inputs_of(model: Any, batch: pa.Table, i: int) -> dict[str, Any]:
    """Row ``i``'s feature values for display (image columns left out: they are shown as images)."""
    images = set(model.pre.modalities["image"].names) if "image" in model.pre.modalities else set()
    return {c: _show(batch.column(c)[i].as_py()) for c in model.pre.schema.names() if c not in images}


def _show(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def image_uris(model: Any, batch: pa.Table) -> list[dict[str, str]]:
    """Per row, each image column as the network saw it (centre view, un-normalised) as a PNG data URI."""
    out: list[dict[str, str]] = [{} for _ in range(batch.num_rows)]
    pre = model.pre.modalities.get("image")
    if pre is None:
        return out
    mean, std = np.asarray(pre.mean).reshape(3, 1, 1), np.asarray(pre.std).reshape(3, 1, 1)
    for col, (pixels, present) in pre.encode(batch).items():
        for i in range(batch.num_rows):
            if present[i]:
                rgb = np.clip((pixels[i] * std + mean) * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)
                out[i][col] = png_uri(rgb)
    return out


def _schema(model: Any, keep: list[str], keep_types: dict[str, pa.DataType]) -> pa.Schema:
    pre, dec = model.pre, model.decision
    fields = [pa.field(k, keep_types[k]) for k in keep]
    fields.append(pa.field("prediction", pa.float64() if model.task == "regression" else pa.string()))
    if model.task != "regression":
        fields += [pa.field("explained_class", pa.string()), pa.field("probability", pa.float64())]
    fields += [pa.field("model", pa.string()), pa.field("units", pa.string())]
    cols = list(pre.schema.names())
    if dec.uses_baseline and model.baseline is not None and model.baseline.vocabulary is not None:
        from hone.explain.baseline import text_key

        key = text_key(pre.text.columns)
        if key not in cols:
            cols.append(key)
    fields += [pa.field(f"attribution.{c}", pa.float64()) for c in cols]
    if dec.uses_network:
        fields += [pa.field("network.score", pa.float64()), pa.field("network.reference", pa.float64()),
                   pa.field("network.delta", pa.float64()), pa.field("network.steps", pa.int32())]
        if pre.text is not None:
            fields += [pa.field(f"words.{c}", pa.list_(_WORD)) for c in pre.text.columns]
        if "image" in pre.modalities:
            for c in pre.modalities["image"].names:
                fields += [pa.field(f"image_map.{c}", pa.list_(pa.float32())), pa.field(f"image_side.{c}", pa.int32())]
    if dec.uses_baseline:
        fields += [pa.field("baseline.score", pa.float64()), pa.field("baseline.expected", pa.float64())]
    fields.append(pa.field("explanation", pa.string()))
    return pa.schema(fields)


def _records(model: Any, batch: pa.Table, rows: list[dict[str, Any]], keep: list[str], schema: pa.Schema) -> pa.Table:
    recs = []
    for i, r in enumerate(rows):
        rec: dict[str, Any] = {k: batch.column(k)[i].as_py() for k in keep}
        rec["prediction"] = r["prediction"] if model.task == "regression" else str(r["prediction"])
        if "explained_class" in r:
            rec["explained_class"], rec["probability"] = str(r["explained_class"]), r["probability"]
        rec["model"], rec["units"] = r["model"], r["units"]
        for c, v in r["columns"].items():
            rec[f"attribution.{c}"] = v
        net = r.get("network")
        if net is not None:
            rec.update({"network.score": net["score"], "network.reference": net["reference"],
                        "network.delta": net["delta"], "network.steps": net["steps"]})
            for c, ws in net.get("words", {}).items():
                rec[f"words.{c}"] = [{"word": w[0], "attribution": w[1], "start": w[2], "end": w[3]} for w in ws]
            for c, m in net.get("images", {}).items():
                rec[f"image_map.{c}"], rec[f"image_side.{c}"] = m["map"], m["side"]
        if "baseline" in r:
            rec["baseline.score"], rec["baseline.expected"] = r["baseline"]["score"], r["baseline"]["expected"]
        rec["explanation"] = json.dumps(r)
        recs.append(rec)
    return pa.Table.from_pylist(recs, schema=schema)


def write_explanations(model: Any, explained: Iterable[tuple[pa.Table, list[dict[str, Any]]]], output: str | Path, *,
                       keep: list[str] | None = None) -> dict[str, Any]:
    """Write ``(batch, explanations)`` pairs to ``output`` (``.parquet`` or ``.html``), atomically.
    Returns ``{"rows", "seconds", "rows_per_second", "steps"}`` (the integration steps used, in words)."""
    output = Path(output)
    kind = output.suffix.lower()
    if kind not in (".parquet", ".html"):
        raise DataError(f"output {str(output)!r} must end in .parquet or .html")
    keep = list(keep or [])
    t0 = time.perf_counter()
    n, steps, fragments, writer = 0, [], [], None
    with atomic_path(output) as tmp:
        try:
            for batch, rows in explained:
                for k in keep:
                    if k not in batch.column_names:
                        raise DataError(f"--keep: column {k!r} is not in the input")
                if kind == ".parquet":
                    if writer is None:
                        schema = _schema(model, keep, {k: batch.schema.field(k).type for k in keep})
                        writer = pq.ParquetWriter(str(tmp), schema)
                    writer.write_table(_records(model, batch, rows, keep, writer.schema))
                else:
                    uris = image_uris(model, batch) if "image" in model.pre.modalities else [{}] * batch.num_rows
                    for i, r in enumerate(rows):
                        if n + i < HTML_ROWS:
                            title = f"row {n + i}" + "".join(f" · {k} = {batch.column(k)[i].as_py()}" for k in keep)
                            truth = (batch.column(model.target)[i].as_py() if model.target in batch.column_names
                                     else None)
                            fragments.append(row_view(r, inputs_of(model, batch, i), uris[i], title=title, truth=truth))
                steps += [r["network"]["steps"] for r in rows if "network" in r]
                n += len(rows)
        finally:
            if writer is not None:
                writer.close()
        if n == 0:
            raise DataError("no rows to explain")
        seconds = time.perf_counter() - t0
        if kind == ".html":
            intro = (f"<p class='muted'>{n} rows explained ({min(n, HTML_ROWS)} shown) by the {e_model(model)}; "
                     f"{n / seconds:.1f} rows/s.</p>")
            tmp.write_text(page(f"hone explanations: {model.target}", [intro, *fragments]), encoding="utf-8")
    return {"rows": n, "seconds": round(seconds, 2), "rows_per_second": round(n / seconds, 2),
            "steps": steps_summary(steps)}


def steps_summary(steps: list[int]) -> str | None:
    """Integration steps used, in words: ``"16"``, or ``"16-64 (median 16)"``."""
    if not steps:
        return None
    lo, hi, med = min(steps), max(steps), int(np.median(steps))
    return str(lo) if lo == hi else f"{lo}-{hi} (median {med})"


def e_model(model: Any) -> str:
    return {"network": "fine-tuned network", "baseline": "baseline", "blend": "blend of network and baseline"}[
        model.decision.model
    ]
