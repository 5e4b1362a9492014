"""SQL quoting: the one place where names and values are turned into DuckDB SQL text."""

from __future__ import annotations

from pathlib import Path


def qi(name: str) -> str:
    """Quote an SQL identifier (a column or view name).

    Example:
        >>> print(qi('a"b'))
        "a""b"
    """
    return '"' + name.replace('"', '""') + '"'


def ql(text: str | Path) -> str:
    """Quote an SQL string literal (a path, a value).

    Example:
        >>> ql("it's")
        "'it''s'"
    """
    return "'" + str(text).replace("'", "''") + "'"


def parquet(path: str | Path) -> str:
    """``read_parquet('path')``: a table expression over one Parquet file."""
    return f"read_parquet({ql(path)})"


FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8")


def is_float_type(dtype: str) -> bool:
    """Whether a DuckDB type can hold NaN or infinity (``FLOAT``/``DOUBLE``)."""
    return dtype.upper().strip() in FLOAT_TYPES


def finite(expr: str) -> str:
    """``expr`` (a FLOAT or DOUBLE) with NaN and +-infinity read as missing (NULL): hone's one policy
    for non-finite feature and target values."""
    return f"(CASE WHEN isfinite({expr}) THEN {expr} END)"


def try_cast(expr: str, dst: str, src: str = "VARCHAR", *, keep_nonfinite: bool = False) -> str:
    """``TRY_CAST`` of ``expr`` (of type ``src``) to ``dst``: NULL where a value does not convert, and
    (unless ``keep_nonfinite``) NULL where a FLOAT/DOUBLE value is NaN or infinite.

    Text is trimmed first. That also keeps DuckDB 2.0's type-pushdown optimiser from turning a
    ``TRY_CAST`` over a CSV column into the reader's (strict) column type, which fails the whole
    scan on one bad cell.
    """
    cast = f"TRY_CAST(trim({expr}) AS {dst})" if src.upper() == "VARCHAR" else f"TRY_CAST({expr} AS {dst})"
    return finite(cast) if is_float_type(dst) and not keep_nonfinite else cast


def qn(value: float | int) -> str:
    """A number as SQL that keeps its type: an int stays a BIGINT literal, anything else is a DOUBLE.

    DuckDB reads a literal with a decimal point (``12069.499999999998``) as DECIMAL, whose arithmetic
    overflows on ordinary full-precision floats; the literal is written as a DOUBLE cast instead,
    which also carries ``nan`` and ``inf`` exactly.

    Example:
        >>> qn(12069.499999999998), qn(3), qn(float("inf"))
        ("CAST('12069.499999999998' AS DOUBLE)", '3', "CAST('inf' AS DOUBLE)")
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return f"CAST('{float(value)!r}' AS DOUBLE)"
