"""``audit.html``: the audit as one self-contained page (no script, nothing fetched), rendered from
the same dictionary as ``audit.json``."""

from __future__ import annotations

import json
from typing import Any

from hone.pages.html import CSS, e, table

_SEVERITY_CLASS = {"error": "worse", "warning": "warn", "info": ""}
_EXTRA_CSS = ".warn{background:#fff8c5}.ex{font-size:12px;color:#57606a;max-width:520px;text-align:left}"


def findings_table(findings: list[dict[str, Any]]) -> str:
    """The findings, most severe first, one row each (shared with the run report's data section)."""
    rows = [[f["severity"], f["check"], f.get("column") or "", f["count"], f["message"], f.get("remedy") or ""]
            for f in findings]
    return table(["severity", "check", "column", "rows", "what", "remedy"], rows,
                 [_SEVERITY_CLASS.get(f["severity"], "") for f in findings], left=3).replace(
        "<td class=''>", "<td class='l'>")


def render_audit(data: dict[str, Any]) -> str:
    """The page for an ``audit.json`` dictionary."""
    s = data.get("summary", {})
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hone audit: {e(data.get('source'))}"
           f"</title><style>{CSS}{_EXTRA_CSS}</style></head><body>",
           f"<h1>hone audit: {e(data.get('source'))}</h1>",
           f"<p class='muted'>{data.get('rows', 0)} rows; {s.get('error', 0)} error(s), {s.get('warning', 0)} "
           f"warning(s), {s.get('info', 0)} note(s). Rows are 0-based positions in the source as read. The source "
           "was not changed.</p>",
           "<h2>Findings</h2>", findings_table(data.get("findings", []))]
    if data.get("columns"):
        out.append(
            "<h2>Columns</h2>"
            + table(
                ["column", "type", "role", "missing", "distinct (approx.)", "why not a feature"],
                [
                    [
                        c["column"],
                        c["type"],
                        c["role"],
                        f"{100 * c['missing_rate']:.1f}%",
                        c["distinct"],
                        c["why_dropped"] or "",
                    ]
                    for c in data["columns"]
                ],
                left=3,
            )
        )
    for f in data.get("findings", []):
        if f.get("examples"):
            out.append(f"<h3>{e(f['check'])}{' — ' + e(f['column']) if f.get('column') else ''}</h3>"
                       + _examples(f["examples"]))
    leak = data.get("split_leakage")
    if leak:
        out.append("<h2>Split leakage</h2>" + table(
            ["split", "rows in duplicate or near-duplicate groups", "rows in groups across splits", "such groups"],
            [[leak["split"], leak["rows_in_groups"], leak["rows"], leak["groups"]]]))
    check = data.get("label_error_check")
    if check:
        out.append("<h2>Likely label errors</h2>")
        if check.get("not_judged") or "rows_checked" not in check:
            out.append(f"<p>Not judged: {e(check['not_judged'])}.</p>")
        else:
            out.append(f"<p class='muted'>{check['rows_checked']} of {check['rows_labelled']} labelled rows checked "
                       f"(5-fold out-of-fold model + confident learning). Flagged: {check['flagged']} rows whose "
                       f"probability of a wrong label is at least {check['threshold']}; their mean score, "
                       f"{e(check.get('expected_precision'))}, estimates the share that are real errors. Estimated "
                       f"noise rate: {check['estimated_noise_rate']}.</p>")
            errs = data.get("label_errors", [])[:200]
            if errs:
                out.append(table(["row", "score", "given", "suggested"],
                                 [[r["row"], r["score"], r["given"], r["suggested"]] for r in errs], left=0))
                if len(data.get("label_errors", [])) > 200:
                    out.append("<p class='muted'>The first 200 by score; audit.json lists them all.</p>")
            classes = check.get("classes", [])
            m = check.get("noise_matrix", {}).get("given|true")
            if m and len(classes) <= 20:
                out.append("<h3>Estimated P(given label | true label)</h3>" +
                           table(["given \\ true", *classes], [[c, *row] for c, row in zip(classes, m)]))
    out.append("</body></html>")
    return "\n".join(out)


def _examples(examples: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for ex in examples for k in ex))
    rows = [[_cell(ex.get(k)) for k in keys] for ex in examples]
    return table(keys, rows, left=len(keys)).replace("<td class='l'>", "<td class='l ex'>")


def _cell(v: Any) -> str:
    if isinstance(v, (list, dict)):
        text = json.dumps(v, ensure_ascii=False, default=str)
        return text if len(text) <= 400 else text[:400] + "…"
    return "" if v is None else str(v)
