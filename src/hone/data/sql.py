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


def try_cast(expr: str, dst: str, src: str = "VARCHAR") -> str:
    """``TRY_CAST`` of ``expr`` (of type ``src``) to ``dst``: NULL where a value does not convert.

    Text is trimmed first. That also keeps DuckDB 2.0's type-pushdown optimiser from turning a
    ``TRY_CAST`` over a CSV column into the reader's (strict) column type, which fails the whole
    scan on one bad cell.
    """
    if src.upper() == "VARCHAR":
        return f"TRY_CAST(trim({expr}) AS {dst})"
    return f"TRY_CAST({expr} AS {dst})"
