"""Open any supported input (CSV/TSV/Parquet/JSONL file, glob, directory, ``sql:`` query, DataFrame,
Arrow table or stream) as a lazy DuckDB view named ``source``; nothing is loaded into memory here.

CSV and JSON columns that DuckDB's sniffer types as numbers, booleans or dates are read as text and
cast with ``TRY_CAST`` in the view: one stray ``"n/a"`` past the sniffer's sample becomes a missing value
(counted, see :func:`coerced_counts`) instead of aborting a job halfway through.
"""

from __future__ import annotations

import atexit
import glob as _glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from hone.data.diagnose import describe_duckdb_error, diagnose_csv
from hone.data.sql import finite, is_float_type, qi, ql, try_cast
from hone.errors import DataError, EmptyDataError

_CSV_EXT = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
_JSON_EXT = {".jsonl", ".ndjson", ".json"}
_PARQUET_EXT = {".parquet", ".pq"}
_COMPRESSED = (".gz", ".gzip", ".zst")  # DuckDB reads these CSV/JSON files as they are
# Cells that spreadsheets, R and pandas write for a missing value: missing, as pandas reads them
MISSING_TEXT = ("", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "#N/A", "#N/A N/A",
                "#NA", "<NA>", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN")
_TOLERANT = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN",
             "DATE", "TIMESTAMP")


@dataclass
class Table:
    """A DuckDB view over the user's input plus the name used in messages.

    ``raw_view`` is the input as read (for CSV, the tolerant columns still as text); ``view`` is what
    every query reads, with ``tolerant`` columns cast to their sniffed type (bad cells become NULL).
    """

    con: duckdb.DuckDBPyConnection
    view: str
    name: str
    columns: list[str]
    types: list[str]
    raw_view: str = ""
    tolerant: dict[str, str] = field(default_factory=dict)
    csv_paths: list[str] = field(default_factory=list)
    encoding: str | None = None
    base_dir: str = ""  # the folder relative paths in the table (image files) are read from; "" = the working folder

    def error(self, err: BaseException) -> DataError:
        """The clearest :class:`DataError` for a DuckDB error met while reading this table."""
        return read_error(err, self.name, self.csv_paths, self.encoding)

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run ``query`` (which may refer to this table's view) and translate DuckDB errors."""
        try:
            return self.con.sql(query)
        except duckdb.Error as err:
            raise self.error(err) from err

    def one(self, query: str) -> tuple[Any, ...]:
        """The first row of ``query``'s result (DuckDB 2 relations have no ``fetchone``)."""
        try:
            rows = self.sql(query).limit(1).fetchall()
        except duckdb.Error as err:  # raised when the query runs, not when it is built
            raise self.error(err) from err
        return tuple(rows[0]) if rows else ()

    def execute(self, statement: str) -> None:
        """Run a statement (DDL, COPY) now, translating DuckDB errors."""
        try:
            self.con.execute(statement)
        except duckdb.Error as err:
            raise self.error(err) from err

    def dtype(self, column: str) -> str:
        return self.types[self.columns.index(column)]


def connect(temp_dir: Path | None = None, memory_limit: str = "512MB", threads: int | None = None, *,
            keep_order: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that spills to ``temp_dir`` beyond ``memory_limit``.

    Every connection hone opens comes from here, so the memory limit always applies.
    ``keep_order`` keeps rows in input order (scoring needs it; splitting and statistics do not, and
    run faster and leaner without it).
    """
    con = duckdb.connect(config={"memory_limit": memory_limit})
    if temp_dir is not None:
        con.execute(f"SET temp_directory = {ql(temp_dir)}")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
    con.execute(f"SET preserve_insertion_order = {'true' if keep_order else 'false'}")
    con.execute("SET partitioned_write_flush_threshold = 65536")
    return con


def run_sql(con: duckdb.DuckDBPyConnection, query: str, name: str) -> duckdb.DuckDBPyRelation:
    """``con.sql(query)`` with DuckDB errors turned into one-line :class:`DataError` naming the input."""
    try:
        return con.sql(query)
    except duckdb.Error as err:
        raise DataError(f"could not read {name}: {describe_duckdb_error(err)}") from err


def file_type(path: str | Path) -> str:
    """A data file's type by its name, looking through a compression suffix: ``.csv`` for
    ``reviews.csv.gz``.

    Example:
        >>> file_type("a/b.CSV.gz"), file_type("x.parquet")
        ('.csv', '.parquet')
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSED:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _reader_for(paths: list[str], name: str, encoding: str | None, columns: dict[str, str] | None = None,
                delim: str | None = None) -> str:
    """The DuckDB table function reading ``paths``; ``columns`` (name -> type) fixes the column types
    of CSV and JSON files instead of sniffing them; ``delim`` overrides the CSV delimiter."""
    exts = {file_type(p) for p in paths}
    if len(exts) > 1:
        raise DataError(f"{name} mixes file types {sorted(exts)}; point hone at files of one format")
    ext = exts.pop()
    files = "[" + ", ".join(ql(p) for p in paths) + "]"
    if ext in _PARQUET_EXT:
        return f"read_parquet({files}, union_by_name = true, hive_partitioning = true)"
    if ext in _JSON_EXT:
        fixed = ", columns = {" + ", ".join(f"{ql(c)}: {ql(t)}" for c, t in columns.items()) + "}" if columns else ""
        return f"read_json({files}, format = 'newline_delimited', union_by_name = true{fixed})"
    if ext in _CSV_EXT:
        delim = delim or _CSV_EXT[ext]
        opts = f", delim = {ql(delim)}" if delim else ""
        if delim == ";":  # semicolon files (much of Europe) write decimals with a comma: 0,5
            opts += ", decimal_separator = ','"
        if encoding:
            opts += f", encoding = {ql(encoding)}"
        if columns:
            opts += ", types = {" + ", ".join(f"{ql(c)}: {ql(t)}" for c, t in columns.items()) + "}"
        return (f"read_csv({files}, header = true, union_by_name = true, sample_size = 20480, "
                f"nullstr = [{', '.join(map(ql, MISSING_TEXT))}]{opts})")
    raise DataError(
        f"{name}: unsupported file type {ext or '(none)'!r}; use .csv, .tsv, .parquet, .jsonl (CSV and JSON "
        "also gzip- or zstd-compressed: .csv.gz) or a sql: query"
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
            str(p)
            for p in path.rglob("*")
            if p.is_file()
            and not p.name.startswith((".", "_"))
            and file_type(p) in {*_CSV_EXT, *_JSON_EXT, *_PARQUET_EXT}
        )
        if not found:
            raise EmptyDataError(f"directory {path_text!r} holds no .csv, .tsv, .parquet or .jsonl files")
        return found
    if not path.exists():
        raise DataError(f"file {path_text!r} not found")
    if path.stat().st_size == 0:
        raise EmptyDataError(f"file {path_text!r} is empty")
    return [str(path)]


def open_table(source: Any, con: duckdb.DuckDBPyConnection, view: str = "source", *, encoding: str | None = None,
               work_dir: Path | None = None) -> Table:
    """Create the view ``view`` over ``source`` and check that it can be read and has columns.

    Args:
        source: a path, glob or directory; ``"sql:SELECT ..."``; a pandas or polars DataFrame; a
            pyarrow Table, RecordBatch or RecordBatchReader.
        con: the DuckDB connection that will run every later query.
        view: the name of the view to create.
        encoding: the text encoding of CSV files (``utf-8`` by default; ``latin-1``, ``utf-16``).
        work_dir: where a one-pass stream (a RecordBatchReader) is written to Parquet so that it
            can be read more than once (default: a temporary folder removed at exit).

    Example:
        >>> import pyarrow as pa
        >>> t = open_table(pa.table({"x": [1, 2]}), connect())
        >>> t.columns
        ['x']
    """
    csv_paths: list[str] = []
    paths: list[str] = []
    delim: str | None = None
    if isinstance(source, (str, os.PathLike)) and not str(source).startswith("sql:"):
        name = repr(str(source))
        paths = _expand(str(source))
        csv_paths = [p for p in paths if file_type(p) in _CSV_EXT]
        if csv_paths and file_type(paths[0]) == ".csv":
            delim = _other_delimiter(paths[0], encoding)
        select = f"SELECT * FROM {_reader_for(paths, name, encoding, delim=delim)}"
    elif isinstance(source, str):
        name = "the sql: query"
        select = source[4:].strip()
        if not select:
            raise DataError("the sql: query is empty; write sql:SELECT ... FROM 'file.parquet'")
        try:  # checked on its own first, so that an error points into the user's text, not hone's
            con.sql(select)
        except duckdb.Error as err:
            raise DataError(f"could not run {name}: {describe_duckdb_error(err, user_sql=select)}") from err
    else:
        name = f"the {type(source).__name__} passed in"
        arrow = _as_arrow(source)
        if isinstance(arrow, pa.RecordBatchReader):  # readable once; hone reads its input several times
            select = f"SELECT * FROM read_parquet({ql(_materialise(arrow, work_dir))})"
        else:
            con.register(f"{view}_in", arrow)
            select = f"SELECT * FROM {view}_in"
    raw = f"{view}_raw"
    _create_view(con, raw, select, name, csv_paths, encoding)
    rel = run_sql(con, f"SELECT * FROM {raw}", name)
    columns, types = list(rel.columns), [str(t) for t in rel.types]
    textual = bool(paths) and file_type(paths[0]) in {*_CSV_EXT, *_JSON_EXT}
    tolerant = {c: t for c, t in zip(columns, types) if textual and t.upper().startswith(_TOLERANT)}
    if tolerant:  # read those columns as text, cast in the view: a bad cell becomes NULL, not an error
        fixed = ({c: "VARCHAR" for c in tolerant} if csv_paths else  # JSON: every column's type is given
                 {c: "VARCHAR" if c in tolerant else t for c, t in zip(columns, types)})
        select = f"SELECT * FROM {_reader_for(paths, name, encoding, fixed, delim)}"
        decimals = [
            c for c, ty in tolerant.items() if delim == ";" and ty.upper().startswith(("DOUBLE", "FLOAT", "DECIMAL"))
        ]
        if decimals:  # read as text, so the decimal comma is the reader's no more: 0,5 -> 0.5
            swap = ", ".join(f"replace({qi(c)}, ',', '.') AS {qi(c)}" for c in decimals)
            select = f"SELECT * REPLACE ({swap}) FROM ({select})"
        _create_view(con, raw, select, name, csv_paths, encoding)
    if any(ty.id == "struct" or str(ty) == "JSON" for ty in rel.types):  # records: a column a field; mixed JSON: text
        flat = _flatten(list(rel.columns), list(rel.types), set(rel.columns))
        _create_view(con, f"{raw}_nested", select, name, csv_paths, encoding)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT {', '.join(flat)} FROM {raw}_nested")
        rel = run_sql(con, f"SELECT * FROM {raw}", name)
        columns = list(rel.columns)
        types = [tolerant.get(c, str(ty)) for c, ty in zip(columns, rel.types)]  # tolerant ones: as sniffed
    # NaN and +-infinity are missing values everywhere (a CSV's "NaN", a Parquet float's inf alike)
    casts = [f"{try_cast(qi(c), tolerant[c]) if c in tolerant else finite(qi(c))} AS {qi(c)}"
             for c, t in zip(columns, types) if c in tolerant or is_float_type(t)]
    replace = f" REPLACE ({', '.join(casts)})" if casts else ""
    _create_view(con, view, f"SELECT *{replace} FROM {raw}", name, csv_paths, encoding)
    base = ""
    if paths:
        src = Path(str(source)).expanduser()
        base = str(src if src.is_dir() else Path(paths[0]).parent)
    return Table(con=con, view=view, name=name, columns=columns, types=types, raw_view=raw, tolerant=tolerant,
                 csv_paths=csv_paths, encoding=encoding, base_dir=base)


def _flatten(names: list[str], types: list[Any], taken: set[str], prefix: str = "", expr: str = "") -> list[str]:
    """The select expression (``... AS name``) of each column, a struct's fields (at any depth) as columns
    of their own named ``parent.field`` (a name already taken gets ``_2``...), a JSON value as its text."""
    out = []
    for n, ty in zip(names, types):
        e = f"struct_extract({expr}, {ql(n)})" if expr else qi(n)
        full = f"{prefix}{n}"
        if ty.id == "struct":
            fields = list(ty.children)
            out += _flatten([f for f, _ in fields], [t for _, t in fields], taken, f"{full}.", e)
            continue
        if str(ty) == "JSON":  # values of several types in one JSON field (0.5 here, "0.5" there): their text
            e = f"json_extract_string({e}, '$')"
        if expr:  # a field: its own column name, unique
            base, i = full, 2
            while full in taken:
                full, i = f"{base}_{i}", i + 1
            taken.add(full)
        out.append(f"{e} AS {qi(full)}")
    return out


def _other_delimiter(path: str, encoding: str | None) -> str | None:
    """The delimiter a ``.csv`` file really uses when its header line holds more semicolons (most of
    Europe), tabs or pipes than commas, else None (commas)."""
    import gzip

    try:
        opener: Any = gzip.open if file_type(path) != Path(path).suffix.lower() else open
        with opener(path, "rt", encoding=encoding or "utf-8", errors="replace", newline="") as f:
            header = f.readline(65536)
    except (OSError, EOFError, LookupError):
        return None  # the reader names the problem
    counts = {d: header.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > header.count(",") else None


def _create_view(con: duckdb.DuckDBPyConnection, view: str, select: str, name: str, csv_paths: list[str],
                 encoding: str | None) -> None:
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {select}")
        if csv_paths:  # surface sniffing and decoding errors now, on the first row
            con.sql(f"SELECT * FROM {view}").limit(1).fetchall()
    except duckdb.Error as err:
        raise read_error(err, name, csv_paths, encoding) from err


def read_error(err: BaseException, name: str, csv_paths: list[str], encoding: str | None) -> DataError:
    """The clearest message for a failed read: for CSV, the line and what is wrong with it."""
    if isinstance(err, duckdb.OutOfMemoryException):
        return DataError(f"reading {name} needed more than DuckDB's memory limit ({describe_duckdb_error(err)}); "
                         "raise it with --set data.memory_limit=2GB")
    if "CSV" in str(err) or "sniff" in str(err):
        for p in csv_paths:
            found = diagnose_csv(Path(p), encoding)
            if found:
                return DataError(found)
    return DataError(f"could not read {name}: {describe_duckdb_error(err)}")


_TEMP_DIRS: list[str] = []


def _remove_temp_dirs() -> None:
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def _materialise(reader: pa.RecordBatchReader, work_dir: Path | None) -> Path:
    import pyarrow.parquet as pq

    if work_dir is None:
        work_dir = Path(tempfile.mkdtemp(prefix="hone-input-"))
        if not _TEMP_DIRS:
            atexit.register(_remove_temp_dirs)
        _TEMP_DIRS.append(str(work_dir))
    work_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkstemp(prefix="stream-", suffix=".parquet", dir=work_dir)[1])
    with pq.ParquetWriter(str(path), reader.schema) as writer:
        for batch in reader:  # one batch at a time: bounded memory
            writer.write_batch(batch)
    return path


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


def coerced_counts(table: Table, casts: dict[str, str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per column, the non-missing input cells read as missing (one scan): those that are not valid
    ``casts[column]`` values (a stray ``"n/a"``), and, apart, the non-finite ones (NaN, +-infinity) of
    a FLOAT/DOUBLE column.

    The counts are reported so nothing is read as missing silently.
    """
    if not casts:
        return {}, {}
    raw = table.raw_view or table.view
    types = dict(zip(table.columns, table.types))
    src = {c: "VARCHAR" if c in table.tolerant else types[c] for c in casts}
    parts = []
    for c, t in casts.items():
        kept = try_cast(qi(c), t, src[c], keep_nonfinite=True)
        parts.append(f"count({qi(c)}) - count({kept}), count({kept}) - count({try_cast(qi(c), t, src[c])})")
    row = table.one(f"SELECT {', '.join(parts)} FROM {raw}")
    bad = {c: int(row[2 * i] or 0) for i, c in enumerate(casts) if row[2 * i]}
    nonfinite = {c: int(row[2 * i + 1] or 0) for i, c in enumerate(casts) if row[2 * i + 1]}
    return bad, nonfinite


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
        raise table.error(err) from err
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (duckdb.Error, pa.ArrowException) as err:  # broken rows surface mid-stream
                raise table.error(err) from err
            yield batch
    finally:
        reader.close()
