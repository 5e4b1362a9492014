"""Small HTML helpers shared by the self-contained pages (the run report, the audit page)."""

from __future__ import annotations

import html
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#1b1f24;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d0d7de;padding:.25em .6em;text-align:right}
th{background:#f6f8fa}td.l,th.l{text-align:left}
.verdict{background:#fff8c5;border:1px solid #d4a72c;padding:.6em 1em;border-radius:6px}
.worse{background:#ffebe9}.best{background:#dafbe1}.plots{display:flex;flex-wrap:wrap;gap:1.2em}figure{margin:0}figcaption{font-weight:600;margin-bottom:.3em}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:12px}.muted{color:#57606a}
"""


def e(x: Any) -> str:
    """HTML-escape ``x``."""
    return html.escape(str(x))


def fmt(v: Any) -> str:
    """A table cell: floats to 4 decimals (NaN as a dash), the rest escaped."""
    if isinstance(v, float):
        return "—" if v != v else f"{v:.4f}"
    return e(v)


def table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None, left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned (text), the others right (numbers)."""
    head = "".join(f"<th class='{'l' if i < left else ''}'>{e(h)}</th>" for i, h in enumerate(header))
    body = "".join(f"<tr class='{(classes or [''] * len(rows))[r]}'>" +
                   "".join(f"<td class='{'l' if i < left else ''}'>{fmt(v)}</td>" for i, v in enumerate(row)) + "</tr>"
                   for r, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"
