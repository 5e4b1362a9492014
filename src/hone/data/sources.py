"""Open any supported input (CSV/TSV/Parquet/JSONL file, glob, directory, ``sql:`` query, DataFrame,
Arrow table) as a lazy DuckDB view named ``source``; nothing is loaded into memory here."""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from hone.errors import DataError, EmptyDataError

import pyarrow as pa

_CSV_EXT = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
_JSON_EXT = {".jsonl", ".ndjson", ".json"}
_PARQUET_EXT = {".parquet", ".pq"}


@dataclass
class Table:
    """A DuckDB view over the user's input plus the name used in messages."""

    con: duckdb.DuckDBPyConnection
    view: str
    name: str
    columns: list[str]
    types: list[str]

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run ``query`` (which may refer to this table's view) and translate DuckDB errors."""
        return run_sql(self.con, query, self.name)

    def one(self, query: str) -> tuple[Any, ...]:
        """The first row of ``query``'s result (DuckDB 2 relations have no ``fetchone``)."""
        rows = self.sql(query).limit(1).fetchall()
        return tuple(rows[0]) if rows else ()

    def execute(self, statement: str) -> None:
        """Run a statement (DDL, COPY) now, translating DuckDB errors."""
        try:
            self.con.execute(statement)
        except duckdb.Error as err:
            raise DataError(f"could not read {self.name}: {_first_lines(err)}") from err


def connect(temp_dir: Path | None = None, memory_limit: str = "512MB", threads: int | None = None, *,
            keep_order: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that spills to ``temp_dir`` beyond ``memory_limit``.

    ``keep_order`` keeps rows in input order (scoring needs it; splitting and statistics do not, and
    run faster and leaner without it).
    """
    con = duckdb.connect(config={"memory_limit": memory_limit})
    if temp_dir is not None:
        con.execute(f"SET temp_directory = {_quote(str(temp_dir))}")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
    con.execute(f"SET preserve_insertion_order = {'true' if keep_order else 'false'}")
    con.execute("SET partitioned_write_flush_threshold = 65536")
    return con


def run_sql(con: duckdb.DuckDBPyConnection, query: str, name: str) -> duckdb.DuckDBPyRelation:
    """``con.sql(query)`` with DuckDB errors turned into one-line :class:`DataError` naming the input."""
    try:
        return con.sql(query)
    except duckdb.Error as err:
        raise DataError(f"could not read {name}: {_first_lines(err)}") from err


def _first_lines(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = " ".join(lines[:2]) if lines else type(err).__name__
    return text[:400]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _reader_for(paths: list[str], name: str) -> str:
    exts = {Path(p).suffix.lower() for p in paths}
    if len(exts) > 1:
        raise DataError(f"{name} mixes file types {sorted(exts)}; point hone at files of one format")
    ext = exts.pop()
    files = "[" + ", ".join(_quote(p) for p in paths) + "]"
    if ext in _PARQUET_EXT:
        return f"read_parquet({files}, union_by_name = true, hive_partitioning = true)"
    if ext in _JSON_EXT:
        return f"read_json({files}, format = 'newline_delimited', union_by_name = true)"
    if ext in _CSV_EXT:
        delim = _CSV_EXT[ext]
        opts = f", delim = {_quote(delim)}" if delim else ""
        return f"read_csv({files}, header = true, union_by_name = true, sample_size = 20480{opts})"
    raise DataError(
        f"{name}: unsupported file type {ext or '(none)'!r}; use .csv, .tsv, .parquet, .jsonl or a sql: query"
    )


def _expand(path_text: str) -> list[str]:
    path = Path(path_text).expanduser()
    if any(c in path_text for c in "*?["):
        found = sorted(p for p in _glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"no files match {path_text!r}")
        return found
    if path.is_dir():
        found = sorted(
            str(p) for p in path.rglob("*")
            if p.is_file() and not p.name.startswith((".", "_")) and p.suffix.lower() in {*_CSV_EXT, *_JSON_EXT, *_PARQUET_EXT}
        )
        if not found:
            raise EmptyDataError(f"directory {path_text!r} holds no .csv, .tsv, .parquet or .jsonl files")
        return found
    if not path.exists():
        raise DataError(f"file {path_text!r} not found")
    if path.stat().st_size == 0:
        raise EmptyDataError(f"file {path_text!r} is empty")
    return [str(path)]


def open_table(source: Any, con: duckdb.DuckDBPyConnection, view: str = "source") -> Table:
    """Create the view ``view`` over ``source`` and check that it can be read and has columns.

    Args:
        source: a path, glob or directory; ``"sql:SELECT ..."``; a pandas or polars DataFrame; a
            pyarrow Table or RecordBatchReader.
        con: the DuckDB connection that will run every later query.
        view: the name of the view to create.

    Example:
        >>> import pyarrow as pa
        >>> t = open_table(pa.table({"x": [1, 2]}), connect())
        >>> t.columns
        ['x']
    """
    if isinstance(source, (str, os.PathLike)) and not str(source).startswith("sql:"):
        name = repr(str(source))
        select = f"SELECT * FROM {_reader_for(_expand(str(source)), name)}"
    elif isinstance(source, str):
        name = "the sql: query"
        select = source[4:].strip()
        if not select:
            raise DataError("the sql: query is empty; write sql:SELECT ... FROM 'file.parquet'")
    else:
        name = f"the {type(source).__name__} passed in"
        con.register(f"{view}_in", _as_arrow(source))
        select = f"SELECT * FROM {view}_in"
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {select}")
    except duckdb.Error as err:
        raise DataError(f"could not read {name}: {_first_lines(err)}") from err
    rel = run_sql(con, f"SELECT * FROM {view}", name)
    return Table(con=con, view=view, name=name, columns=list(rel.columns), types=[str(t) for t in rel.types])


def _as_arrow(obj: Any) -> pa.Table | pa.RecordBatchReader:
    if isinstance(obj, (pa.Table, pa.RecordBatchReader)):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if hasattr(obj, "to_arrow"):  # polars
        return obj.to_arrow()
    if type(obj).__module__.startswith("pandas"):
        return pa.Table.from_pandas(obj, preserve_index=False)
    if isinstance(obj, dict):
        return pa.table(obj)
    raise DataError(
        f"cannot read a {type(obj).__name__}; pass a path, a 'sql:' query, a pandas/polars DataFrame or an Arrow table"
    )


def count_rows(table: Table) -> int:
    """Number of rows in the table (a full scan for CSV/JSON; metadata for Parquet)."""
    return int(table.one(f"SELECT count(*) FROM {table.view}")[0])


def stream(table: Table, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream a query's result as Arrow record batches (bounded memory).

    The reader holds the table's connection until it is drained or closed: run no other query on
    that connection meanwhile (registered DataFrames are invisible to cursors, so none is used).
    """
    try:
        reader = table.con.sql(query).to_arrow_reader(batch_rows)
    except duckdb.Error as err:
        raise DataError(f"could not read {table.name}: {_first_lines(err)}") from err
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (duckdb.Error, pa.ArrowException) as err:  # broken rows surface mid-stream
                raise DataError(f"could not read {table.name}: {_first_lines(err)}") from err
            yield batch
    finally:
        reader.close()
