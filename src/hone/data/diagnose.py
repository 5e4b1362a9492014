"""Turn a reader's failure into one line a user can act on: the file, the line, what is wrong.

DuckDB's messages are written for DuckDB's users: they quote the SQL hone generated, list sniffer
search spaces and suggest system catalogue tables. These helpers keep the part that concerns the
user's input and, for CSV files, find the offending line themselves (only after a failure, by
streaming the file once).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import re
import sys
import zlib
from pathlib import Path

_INTERNAL = re.compile(r'\s*Did you mean "?(pg_|duckdb_|sqlite_|information_schema|source|hone_)[^"\n]*"?\??', re.I)
_NOISE = ("Possible Solution", "Possible fixes", "file =", "delimiter =", "The search space", "LINE ")


def describe_duckdb_error(err: BaseException, *, user_sql: str | None = None) -> str:
    """The first meaningful line of a DuckDB error, without hone's SQL or internal names.

    With ``user_sql`` (the user's own ``sql:`` query), the error's position is given in it.

    Example:
        >>> describe_duckdb_error(Exception('Catalog Error: Table with name t does not exist!\\nDid you mean "pg_am"?'))
        'Catalog Error: Table with name t does not exist!'
    """
    text = _INTERNAL.sub("", str(err))
    lines = [ln.rstrip() for ln in text.splitlines()]
    head = next((ln.strip() for ln in lines if ln.strip()), type(err).__name__)
    where = ""
    if user_sql is not None:
        for i, ln in enumerate(lines):
            if ln.startswith("LINE ") and i + 1 < len(lines) and "^" in lines[i + 1]:
                prefix = len(ln) - len(ln.split(": ", 1)[-1])
                col = lines[i + 1].index("^") - prefix
                snippet = ln[prefix:][max(0, col - 20): col + 30]
                where = f" (line {ln[5:].split(':')[0]}, character {col + 1}: ...{snippet}...)"
                break
    return (head + where)[:400]


def diagnose_csv(path: Path, encoding: str | None, *, delimiter: str | None = None) -> str | None:
    """Stream ``path`` once and describe its first defect: a decoding error or a ragged line."""
    enc = encoding or "utf-8"
    try:
        codecs.lookup(enc)
    except LookupError:
        return f"unknown --encoding {enc!r} for {str(path)!r}; use utf-8, latin-1 or utf-16"
    compressed = path.suffix.lower() in (".gz", ".gzip")
    inner = Path(path.stem) if compressed else path
    delim = delimiter or ("\t" if inner.suffix.lower() in (".tsv", ".tab") else ",")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a huge cell is data (DuckDB reads it), not a defect
    try:
        opener = gzip.open if compressed else open
        with opener(path, "rt", encoding=enc, newline="") as f:
            rows = csv.reader(f, delimiter=delim)
            header = next(rows, None)
            if header is None:
                return None
            for row in rows:
                if row and len(row) != len(header):
                    return (f"line {rows.line_num} of {str(path)!r} has {len(row)} fields, expected {len(header)} "
                            f"(as in the header: {delim.join(header)[:80]}); fix the line or quote its text")
    except UnicodeDecodeError as err:
        byte = f"byte 0x{err.object[err.start]:02x}"
        if enc.replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig"):
            return (f"{str(path)!r} is not {enc} text: {byte} on line {_first_bad_utf8_line(path)} cannot be decoded; "
                    "pass --encoding latin-1 (spreadsheet exports) or --encoding utf-16")
        return f"{str(path)!r} is not {enc} text: {byte} cannot be decoded; pass the file's --encoding"
    except csv.Error as err:
        return f"{str(path)!r} is not a readable CSV file: {err}"
    except (OSError, EOFError, zlib.error) as err:  # a damaged or truncated .gz
        return f"{str(path)!r} cannot be decompressed: {err}"
    return None


def _first_bad_utf8_line(path: Path) -> int:
    # The decoder reports an offset within the chunk it was given, not in the file: find the line
    # again by decoding the file line by line in binary.
    with open(path, "rb") as f:
        for line, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return line
    return 0
