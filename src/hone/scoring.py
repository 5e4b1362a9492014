"""Stream-score any size of input to Parquet or CSV: kept input columns, prediction, proba_<class>."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hone._io import atomic_path
from hone.artifact import Model
from hone.data.schema import check_columns
from hone.data.sources import connect, open_table
from hone.errors import DataError

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv"}


def output_columns(model: Model, batch: pa.Table, out: np.ndarray, keep: list[str] | None) -> pa.Table:
    """The rows to write: ``keep`` (default: all input columns), ``missing_image_<column>`` for a
    model with image columns, ``prediction`` and ``proba_<class>``."""
    cols = keep if keep is not None else batch.column_names
    table = batch.select(cols)
    images = model.pre.images
    if images is not None:  # rows whose image was missing or unreadable (scored without it)
        for c in images.names:
            table = table.append_column(f"missing_image_{c}", pa.array(images.missing_mask(batch, c)))
    if model.task == "regression":
        return table.append_column("prediction", pa.array(out, type=pa.float64()))
    labels = model.labels_for(out)  # the decision rule chosen on validation (threshold, prior correction)
    table = table.append_column("prediction", pa.array(labels.tolist()))
    for k, c in enumerate(model.classes):
        table = table.append_column(f"proba_{c}", pa.array(out[:, k], type=pa.float64()))
    return table


def predict_file(model: Model, source: Any, output: str | Path, *, keep: list[str] | None = None,
                 batch_rows: int = 8192, encoding: str | None = None, workers: int | None = None,
                 progress: bool | None = None) -> int:
    """Score ``source`` batch by batch into ``output`` (.parquet, .csv or .tsv); returns the row count.

    Rows come out in input order. The file appears only when complete: it is written to a
    temporary name and renamed at the end. ``workers`` threads (default: all cores) run DuckDB's
    reading and the network; ``progress`` draws a bar in rows/s with an ETA (default: on a terminal).
    """
    import os
    import sys


    output = Path(output)
    fmt = _FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise DataError(f"output {str(output)!r} must end in .parquet, .csv or .tsv")
    threads = int(os.cpu_count() or 1) if workers is None else int(workers)
    if threads < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    model.set_threads(threads)
    con = connect(threads=threads, keep_order=True)
    n = 0
    bar: Any = None
    try:
        table = open_table(source, con, encoding=encoding)
        if keep:
            check_columns(table, keep, "--keep")
        if progress if progress is not None else sys.stderr.isatty():
            from tqdm.auto import tqdm

            total = int(table.one(f"SELECT count(*) FROM {table.view}")[0])
            bar = tqdm(total=total, unit="row", unit_scale=True, dynamic_ncols=True, desc="scoring")
        with atomic_path(output) as tmp:
            writer: Any = None
            try:
                for batch, out in model.iter_scored(table, batch_rows):
                    rows = output_columns(model, batch, out, keep)
                    if writer is None:
                        writer = _open_writer(tmp, fmt, rows.schema)
                    writer.write_table(rows)
                    n += rows.num_rows
                    if bar is not None:
                        bar.update(rows.num_rows)
                if writer is None:
                    raise DataError(f"{table.name} has no rows to score")
            finally:
                if writer is not None:
                    writer.close()
    finally:
        if bar is not None:
            bar.close()
        con.close()
    return n


def _open_writer(path: Path, fmt: str, schema: pa.Schema) -> Any:
    if fmt == "parquet":
        return pq.ParquetWriter(str(path), schema, compression="zstd")
    opts = pacsv.WriteOptions(delimiter="\t" if fmt == "tsv" else ",")
    return pacsv.CSVWriter(str(path), schema, write_options=opts)
