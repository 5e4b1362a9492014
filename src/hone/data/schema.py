"""Column-role and task inference on a reservoir sample, with user overrides, as a JSON-able Schema."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hone.data.sources import Table, coerced_counts
from hone.data.sql import finite, is_float_type, qi, try_cast
from hone.errors import DataError, EmptyDataError, SchemaError, did_you_mean

Role = Literal["text", "categorical", "numeric", "boolean", "datetime", "image"]
TaskName = Literal["binary", "multiclass", "regression"]

_ID_NAME = re.compile(r"(^|[_\s.-])(id|ids|key|uuid|guid|index|idx|rownames?|row_?num(ber)?)$", re.IGNORECASE)
_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")
_MAX_CLASSES = 1000
# Per-column sketches (approx_count_distinct keeps a HyperLogLog each) computed in one query: a table of
# thousands of columns is read in chunks, so the sketches fit DuckDB's memory limit.
_AGGREGATES_PER_QUERY = 256
# A text column is image paths when nearly all its values end like an image file.
IMAGE_SUFFIX = r"(?i)\.(png|jpe?g|bmp|gif|webp|tiff?)$"
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def is_image_bytes(head: bytes) -> bool:
    """Whether bytes start like an encoded image (PNG, JPEG, GIF, BMP, TIFF or WebP).

    Example:
        >>> is_image_bytes(b"\x89PNG\r\n\x1a\n..."), is_image_bytes(b"hello")
        (True, False)
    """
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def pixel_array_type(dtype: str) -> bool:
    """Whether a DuckDB type is a (nested) list or array of numbers: pixels (``UTINYINT[]``, ``FLOAT[28][28]``)."""
    base = re.sub(r"(\[\d*\])+$", "", dtype.strip())
    return base != dtype.strip() and is_numeric_type(base)


@dataclass
class ColumnSpec:
    """One feature column: its name, the role it plays and its DuckDB type."""

    name: str
    role: Role
    dtype: str
    reason: str = "inferred"


@dataclass
class Schema:
    """Feature columns, dropped columns (with the reason), the target and the task."""

    target: str
    task: TaskName
    columns: list[ColumnSpec]
    dropped: dict[str, str] = field(default_factory=dict)
    classes: list[Any] = field(default_factory=list)
    target_dtype: str = ""
    coerced: dict[str, int] = field(default_factory=dict)  # cells that were not valid values, read as missing
    nonfinite: dict[str, int] = field(default_factory=dict)  # NaN/+-inf cells read as missing (target: rows dropped)

    def names(self, *roles: Role) -> list[str]:
        """Feature column names, optionally only those with one of ``roles``."""
        return [c.name for c in self.columns if not roles or c.role in roles]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Schema:
        cols = [ColumnSpec(**c) for c in d["columns"]]
        return cls(**{**d, "columns": cols})

    def __str__(self) -> str:
        width = max([len(c.name) for c in self.columns] + [len(k) for k in self.dropped] + [len(self.target), 6])
        lines = [f"{'column':<{width}}  role         type       why"]
        lines.append(f"{self.target:<{width}}  target       {self.target_dtype:<10} task {self.task}"
                     + (f", {len(self.classes)} classes" if self.classes else ""))
        lines += [f"{c.name:<{width}}  {c.role:<12} {c.dtype[:10]:<10} {c.reason}" for c in self.columns]
        lines += [f"{k:<{width}}  dropped      {'':<10} {v}" for k, v in self.dropped.items()]
        return "\n".join(lines)


def feature_selects(schema: Schema, table: Table) -> list[str]:
    """``SELECT`` expressions for the feature columns, typed as the schema says.

    A numeric, boolean or datetime feature whose input type differs (text in a CSV, a number read
    as text in another file) goes through ``TRY_CAST``: a value that does not convert is missing.
    """
    types = dict(zip(table.columns, table.types))
    out = []
    for c in schema.columns:
        q = qi(c.name)
        if c.role in ("numeric", "boolean", "datetime") and types.get(c.name, c.dtype) != c.dtype:
            out.append(f"{try_cast(q, c.dtype, types[c.name])} AS {q}")
        else:
            out.append(q)
    return out


def scoring_query(schema: Schema, table: Table, *, flag_prefix: str) -> tuple[str, list[str]]:
    """The query that reads ``table`` for scoring, and the feature columns it checks.

    Numeric, boolean and datetime features are read as their training types from the input as it
    is (for CSV: text): a value that does not convert, such as a stray ``"n/a"``, becomes a missing
    value, and a boolean column ``flag_prefix + name`` marks each such cell so that it can be
    counted. Other columns keep their types.
    """
    types = dict(zip(table.columns, table.types))
    wanted = {c.name: c.dtype for c in schema.columns if c.role in ("numeric", "boolean", "datetime")}
    casts, flags, checked = [], [], []
    for col in table.columns:
        src = "VARCHAR" if col in table.tolerant else types[col]
        dst = wanted.get(col, types[col])
        if src == dst and not (col in wanted and is_float_type(dst)):
            if is_float_type(src):  # NaN and infinity are missing in every column (a target's too)
                casts.append(f"{finite(qi(col))} AS {qi(col)}")
            continue
        q, cast = qi(col), try_cast(qi(col), dst, src)
        casts.append(f"{cast} AS {q}")
        if col in wanted:
            flags.append(f", ({q} IS NOT NULL AND {cast} IS NULL) AS {qi(flag_prefix + col)}")
            checked.append(col)
    replace = f" REPLACE ({', '.join(casts)})" if casts else ""
    return f"SELECT *{replace}{''.join(flags)} FROM {table.raw_view or table.view}", checked


def is_numeric_type(dtype: str) -> bool:
    return dtype.upper().startswith(_NUMERIC_TYPES)


def _base_role(dtype: str) -> Role | None:
    t = dtype.upper()
    if pixel_array_type(t):
        return "image"
    if t == "BOOLEAN":
        return "boolean"
    if t.startswith(("DATE", "TIMESTAMP")):
        return "datetime"
    if is_numeric_type(t):
        return "numeric"
    if t == "VARCHAR":
        return "categorical"
    return None


def check_columns(table: Table, names: list[str], what: str) -> None:
    """Raise a :class:`DataError` naming the first of ``names`` that is not a column of ``table``."""
    for n in names:
        if n not in table.columns:
            raise DataError(
                f"column {n!r} ({what}) not found in {table.name}; columns are: {', '.join(table.columns)}."
                + did_you_mean(n, table.columns)
            )


def infer_schema(table: Table, *, target: str, task: str = "auto", overrides: dict[str, list[str]] | None = None,
                 exclude: dict[str, str] | None = None, sample_rows: int = 50_000, seed: int = 0,
                 min_classes: int = 2) -> Schema:
    """Infer each column's role and the task from a reservoir sample of ``table`` (``min_classes``: 1
    for one data silo of a federation, which may hold a single class of the agreed label set).

    Args:
        table: the opened input.
        target: the column to predict.
        task: ``auto`` or a task name that overrides inference.
        overrides: ``{"text": [...], "categorical": [...], "numeric": [...], "ignore": [...]}``.
        exclude: columns that are not features for another reason (``{name: reason}``), e.g. the split column.
        sample_rows: rows of the reservoir sample.
        seed: the sample's seed.

    Example:
        >>> import pyarrow as pa
        >>> from hone.data.sources import connect, open_table
        >>> t = open_table(pa.table({"x": [1.0, 2.5, 3.0, 4.2], "y": ["a", "b", "a", "b"]}), connect())
        >>> infer_schema(t, target="y").task
        'binary'
    """
    overrides = overrides or {}
    check_columns(table, [target], "--target")
    for role, cols in overrides.items():
        check_columns(table, cols, f"--{role}")
    forced = {c: r for r, cols in overrides.items() for c in cols}
    exclude = {**(exclude or {}), target: "target"}
    stats = _sample_stats(table, sample_rows, seed)
    columns: list[ColumnSpec] = []
    dropped: dict[str, str] = {}
    for name, dtype in zip(table.columns, table.types):
        if name in exclude:
            if name != target:
                dropped[name] = exclude[name]
            continue
        if forced.get(name) == "ignore":
            dropped[name] = "ignored by --ignore"
            continue
        inferred, reason = _infer_role(name, dtype, stats[name], forced.get(name))
        if inferred is None:
            dropped[name] = reason
        else:
            numeric_text = inferred == "numeric" and not is_numeric_type(dtype) and dtype.upper() != "BOOLEAN"
            columns.append(ColumnSpec(name, inferred, "DOUBLE" if numeric_text else dtype, reason))
    if not columns:
        raise SchemaError(f"no usable feature columns left in {table.name} besides the target {target!r}"
                          f" (dropped: {'; '.join(f'{k}: {v}' for k, v in dropped.items()) or 'none'})")
    dtype = table.types[table.columns.index(target)]
    task_name, classes = _infer_task(table, target, dtype, task, min_classes)
    types = dict(zip(table.columns, table.types))
    casts = {c.name: c.dtype for c in columns if c.role in ("numeric", "boolean", "datetime")
             and (c.name in table.tolerant or types[c.name] != c.dtype or is_float_type(c.dtype))}
    if is_float_type(dtype) or (target in table.tolerant and is_float_type(table.tolerant[target])):
        casts[target] = "DOUBLE"
    coerced, nonfinite = coerced_counts(table, casts)
    coerced.pop(target, None)
    return Schema(target, task_name, columns, dropped, classes, dtype, coerced, nonfinite)


def _sample_stats(table: Table, sample_rows: int, seed: int) -> dict[str, dict[str, float]]:
    sample = f"(SELECT * FROM {table.view} USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE ({int(seed)}))"
    parts, names = ["count(*)"], ["rows"]
    for i, (name, dtype) in enumerate(zip(table.columns, table.types)):
        q = qi(name)
        parts += [f"count({q})", f"approx_count_distinct({q})"]
        names += [f"n{i}", f"d{i}"]
        if dtype.upper() == "VARCHAR":
            parts += [
                f"avg(length({q}))",
                f"avg(len(string_split(trim({q}), ' ')))",
                f"count({try_cast(q, 'DOUBLE', keep_nonfinite=True)})",
                f"count_if(regexp_matches(trim({q}), '{IMAGE_SUFFIX}'))",
            ]
            names += [f"l{i}", f"w{i}", f"p{i}", f"f{i}"]
    values: dict[str, Any] = {}
    for start in range(0, len(parts), _AGGREGATES_PER_QUERY):  # a wide table: a few columns' sketches at a time
        chunk = ["count(*)", *parts[max(1, start):start + _AGGREGATES_PER_QUERY]]
        got = table.one(f"SELECT {', '.join(chunk)} FROM {sample}")
        values.update(zip(["rows", *names[max(1, start):start + _AGGREGATES_PER_QUERY]], got))
    if not values.get("rows"):
        raise EmptyDataError(f"{table.name} has no rows")
    out = {}
    for i, name in enumerate(table.columns):
        n = float(values[f"n{i}"] or 0)
        out[name] = {"rows": float(values["rows"]), "count": n, "distinct": min(float(values[f"d{i}"] or 0), n),
                     "length": float(values.get(f"l{i}") or 0), "words": float(values.get(f"w{i}") or 0),
                     "numbers": float(values.get(f"p{i}") or 0), "image_files": float(values.get(f"f{i}") or 0)}
        if table.types[i].upper() == "BLOB":  # encoded images? the first bytes of a few values tell
            heads = table.sql(f"SELECT {qi(name)} FROM {sample} WHERE {qi(name)} IS NOT NULL LIMIT 20").fetchall()
            out[name]["image_files"] = float(sum(is_image_bytes(bytes(h[0][:12])) for h in heads))
            out[name]["count"] = min(out[name]["count"], float(len(heads))) if heads else 0.0
    return out


def _infer_role(name: str, dtype: str, s: dict[str, float], forced: str | None) -> tuple[Role | None, str]:
    base = _base_role(dtype)
    if forced:
        _check_forced(name, dtype, base, s, forced)
        return forced, "set by user"  # type: ignore[return-value]
    if dtype.upper() == "BLOB":
        if s["count"] and s["image_files"] >= 0.9 * s["count"]:
            return "image", "encoded images (PNG/JPEG/... bytes)"
        return None, "unsupported type BLOB (not encoded images)"
    if base is None:
        return None, f"unsupported type {dtype}"
    if s["count"] == 0:
        return None, "all values missing"
    if base == "image":
        return "image", "arrays of pixels"
    if base == "categorical" and s["image_files"] >= 0.95 * s["count"]:
        return "image", "paths to image files"
    if s["distinct"] <= 1:
        return None, "constant"
    ratio = s["distinct"] / s["count"]
    if base == "numeric" and "INT" in dtype.upper() and ratio > 0.95 and _ID_NAME.search(name):
        return None, "ID-like (unique integers named like an id)"
    if base == "categorical":
        return _text_role(s, ratio)
    return base, "inferred"


def _check_forced(name: str, dtype: str, base: str | None, s: dict[str, float], forced: str) -> None:
    """A role the user set (``--text COL``...) that the column's type cannot take is an error."""
    if forced == "image" and not (dtype.upper() in ("VARCHAR", "BLOB") or pixel_array_type(dtype)):
        raise SchemaError(f"column {name!r} has type {dtype}; an image column holds paths (text), encoded "
                          "images (bytes) or arrays of pixels")
    if forced != "image" and base is None or forced in ("text", "categorical") and base == "image":
        raise SchemaError(
            f"column {name!r} has type {dtype}, which cannot be --{forced}: hone reads numbers, text, "
            "booleans, dates and images; select the parts you need with a sql: query "
            f"(e.g. sql:SELECT *, CAST({qi(name)} AS VARCHAR) AS {qi(name + '_text')} FROM ...)"
        )
    if forced == "numeric" and base not in ("numeric", "boolean") and not (base == "categorical" and s["numbers"]):
        raise SchemaError(f"column {name!r} has type {dtype} and holds no numbers; it cannot be --numeric")


def _text_role(s: dict[str, float], ratio: float) -> tuple[Role | None, str]:
    """The role of a column of strings: numbers in text, free text, an ID or categories."""
    if s["numbers"] >= 0.95 * s["count"] and s["distinct"] > 2:
        bad = int(s["count"] - s["numbers"])
        return "numeric", f"numbers in text ({bad} non-numeric value(s) in the sample read as missing)"
    if s["words"] >= 4 or (ratio > 0.5 and s["length"] >= 25 and s["words"] >= 2):
        return "text", f"free text (mean {s['words']:.0f} words)"
    if ratio > 0.5 and s["words"] >= 2:  # titles, product names: mostly distinct, several words each
        return "text", f"short free text (mean {s['words']:.1f} words, {100 * ratio:.0f}% distinct)"
    if ratio > 0.95 and s["count"] >= 20:
        return None, "ID-like (unique short strings)"
    return "categorical", f"~{int(s['distinct'])} distinct values"


def _infer_task(table: Table, target: str, dtype: str, task: str, min_classes: int = 2) -> tuple[TaskName, list[Any]]:
    q = qi(target)
    numeric = is_numeric_type(dtype)
    if task == "regression" or (task == "auto" and numeric and _looks_continuous(table, target, dtype)):
        if not numeric:
            bad = table.one(f"SELECT count(*), any_value({q}) FROM {table.view} "
                            f"WHERE {q} IS NOT NULL AND TRY_CAST({q} AS DOUBLE) IS NULL")
            if bad and bad[0]:
                raise DataError(f"target {target!r} in {table.name} must be numeric for regression, but {bad[0]} "
                                f"values are not numbers, e.g. {bad[1]!r}")
        return "regression", []
    rows = table.sql(f"SELECT {q} AS v, count(*) AS n FROM {table.view} WHERE {q} IS NOT NULL "
                     f"GROUP BY 1 ORDER BY 1 LIMIT {_MAX_CLASSES + 1}").fetchall()
    if not rows:
        raise DataError(f"target {target!r} in {table.name} has no non-missing values")
    if len(rows) < min_classes:
        raise DataError(f"target {target!r} has one class ({rows[0][0]!r}) in {table.name}; "
                        "classification needs at least 2")
    if len(rows) > _MAX_CLASSES:
        raise SchemaError(f"target {target!r} in {table.name} has more than {_MAX_CLASSES} classes; "
                          "if it is a number to predict, pass --task regression")
    classes = [_plain(v) for v, _ in rows]
    if task == "binary" and len(classes) != 2:
        raise SchemaError(f"--task binary needs 2 classes in {target!r}, found {len(classes)}")
    return ("binary" if len(classes) == 2 else "multiclass"), classes


def _looks_continuous(table: Table, target: str, dtype: str) -> bool:
    q = qi(target)
    present, distinct, integral = table.one(
        f"SELECT count({q}), approx_count_distinct({q}), bool_and({q} = round({q})) FROM {table.view}"
    )
    if not present:  # (a text target with no value gets the classification path's own message)
        raise DataError(f"target {target!r} in {table.name} has no values: every row's is missing"
                        + (" (or NaN/infinite)" if is_float_type(dtype) else ""))
    return not integral or distinct > 20


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (str, int, float, bool)):
        return v
    return str(v)
