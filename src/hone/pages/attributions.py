"""HTML views of explanations (from :mod:`hone.explain`'s dicts): a row's text with its words shaded
by attribution, a bar chart of its column attributions, its images under their heat maps; and the
global importance section of the report. Self-contained: inline CSS, SVG and PNG data URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from hone.pages.html import CSS, e, table

VIEW_CSS = """
.xrow{border:1px solid #d0d7de;border-radius:8px;padding:.8em 1em;margin:1em 0}.xrow h3{margin:.1em 0 .4em}
.xtext{line-height:1.9;background:#fff;border:1px solid #eaeef2;padding:.4em .6em;border-radius:6px}
.xtext span{border-radius:3px;padding:0 1px}.ximg{position:relative;display:inline-block;margin:.3em 1em .3em 0}
.ximg img{display:block;width:192px;height:192px;image-rendering:auto}.ximg img.heat{position:absolute;left:0;top:0}
.xkey{font-size:12px;color:#57606a}.pos{color:#b42318}.neg{color:#1d4ed8}
"""
POS, NEG = (220, 38, 38), (37, 99, 235)  # red: towards the explained class; blue: against it


def _rgba(v: float, scale: float, alpha: float = 0.55) -> str:
    c = POS if v >= 0 else NEG
    a = min(1.0, abs(v) / scale) * alpha if scale > 0 else 0.0
    return f"rgba({c[0]},{c[1]},{c[2]},{a:.3f})"


def png_uri(rgb: np.ndarray) -> str:
    """A ``[H, W, 3]`` or ``[H, W, 4]`` uint8 array as a PNG data URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def heat_uri(values: list[float], side: int, size: int = 192) -> str:
    """An attribution map (``side x side``) as a translucent red/blue PNG of ``size`` pixels."""
    from PIL import Image

    m = np.asarray(values, dtype=np.float64).reshape(side, side)
    scale = float(np.abs(m).max()) or 1.0
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    pos = m >= 0
    for ch in range(3):
        rgba[..., ch] = np.where(pos, POS[ch], NEG[ch])
    rgba[..., 3] = np.clip(np.abs(m) / scale * 190, 0, 255).astype(np.uint8)
    img = Image.fromarray(rgba, "RGBA").resize((size, size), Image.BILINEAR)
    return png_uri(np.asarray(img))


def bars(columns: dict[str, float], *, width: int = 520, top: int = 12) -> str:
    """A horizontal bar chart (inline SVG) of attributions per column, largest magnitude first."""
    items = sorted(columns.items(), key=lambda kv: -abs(kv[1]))[:top]
    if not items:
        return "<p class='muted'>no attributions</p>"
    scale = max(abs(v) for _, v in items) or 1.0
    label_w, row_h = 170, 20
    mid = label_w + (width - label_w) / 2
    half = (width - label_w) / 2 - 50
    parts = [f"<svg width='{width}' height='{row_h * len(items) + 6}' "
             f"role='img' aria-label='attribution per column'>",
             f"<line x1='{mid:.1f}' y1='0' x2='{mid:.1f}' y2='{row_h * len(items)}' stroke='#8c959f'/>"]
    for i, (name, v) in enumerate(items):
        y = i * row_h + 3
        w = abs(v) / scale * half
        x = mid if v >= 0 else mid - w
        color = "rgb({},{},{})".format(*(POS if v >= 0 else NEG))
        label = name if len(name) <= 24 else name[:23] + "…"
        parts.append(f"<text x='{label_w - 6}' y='{y + 12}' font-size='11' text-anchor='end'>{e(label)}</text>")
        parts.append(f"<rect x='{x:.1f}' y='{y}' width='{max(w, 0.5):.1f}' height='{row_h - 6}' fill='{color}'>"
                     f"<title>{e(name)}: {v:+.4g}</title></rect>")
        tx = x + w + 4 if v >= 0 else x - 4
        parts.append(f"<text x='{tx:.1f}' y='{y + 12}' font-size='10' text-anchor='{'start' if v >= 0 else 'end'}'>"
                     f"{v:+.3g}</text>")
    parts.append("</svg>")
    return "".join(parts)


def shaded_text(text: str, words: list[list[Any]]) -> str:
    """``text`` with each word's background shaded by its attribution (red for, blue against)."""
    scale = max((abs(float(w[1])) for w in words), default=0.0)
    out, pos = [], 0
    for w in sorted(words, key=lambda w: int(w[2])):
        start, end = int(w[2]), int(w[3])
        if start < pos:
            continue
        out.append(e(text[pos:start]))
        out.append(f"<span style='background:{_rgba(float(w[1]), scale)}' title='{float(w[1]):+.4g}'>"
                   f"{e(text[start:end])}</span>")
        pos = end
    out.append(e(text[pos:]) if pos < len(text) else "")
    return "<div class='xtext'>" + "".join(out) + "</div>"


def row_view(r: dict[str, Any], inputs: dict[str, Any], images: dict[str, str] | None = None, *,
             title: str = "", truth: Any = None) -> str:
    """One explained row: the prediction, the column bar chart, the shaded text, the image heat maps."""
    head = f"prediction <b>{e(r['prediction'])}</b>"
    if "probability" in r:
        head += f" · explained class <b>{e(r['explained_class'])}</b> (probability {r['probability']:.3f})"
    if truth is not None:
        head += f" · truth <b>{e(truth)}</b>"
    net = r.get("network")
    out = [f"<div class='xrow'><h3>{e(title)}</h3><p>{head} · model: {e(r['model'])}</p>",
           f"<p class='xkey'>attribution per column ({e(r['units'])}; <span class='pos'>red: towards</span>, "
           f"<span class='neg'>blue: against</span> the explained class)</p>", bars(r["columns"])]
    if net is not None:
        out.append(f"<p class='xkey'>network: score {net['score']:+.4f}, reference {net['reference']:+.4f}, "
                   f"convergence delta {net['delta']:.2g} ({net['steps']} steps)</p>")
        for col, words in net.get("words", {}).items():
            out.append(f"<p><b>{e(col)}</b></p>" + shaded_text(str(inputs.get(col) or ""), words))
        for col, m in net.get("images", {}).items():
            src = (images or {}).get(col)
            if src is None:
                continue
            out.append(
                f"<p><b>{e(col)}</b></p><div class='ximg'><img src='{src}' alt='{e(col)}'>"
                f"<img class='heat' src='{heat_uri(m['map'], m['side'])}' alt='attribution map of {e(col)}'></div>"
            )
    base = r.get("baseline")
    if base is not None:
        out.append(f"<p class='xkey'>baseline ({e(base['kind'])}): score {base['score']:+.4f}, expected "
                   f"{base['expected']:+.4f}</p>")
        if base.get("terms"):
            out.append(table(["term", "contribution"], [[t, float(v)] for t, v in base["terms"]]))
    values = [[c, v] for c, v in inputs.items() if c not in (net or {}).get("words", {}) and c not in (images or {})]
    if values:
        out.append("<details><summary>inputs</summary>" + table(["column", "value"], [[c, str(v)] for c, v in values],
                                                                left=2) + "</details>")
    out.append(f"<p class='xkey'>{e(r['how'])}</p></div>")
    return "".join(out)


def page(title: str, body: list[str]) -> str:
    """A self-contained HTML page."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{CSS}{VIEW_CSS}</style></head><body><h1>{e(title)}</h1>" + "\n".join(body) + "</body></html>")


def importance_section(x: dict[str, Any]) -> str:
    """The report's section: permutation importance, mean absolute attributions, top words, explained rows."""
    out = ["<h2>What the model relies on</h2>"]
    perm = x.get("permutation")
    if perm:
        out.append(
            f"<p class='muted'>Permutation importance on {perm['rows']} validation rows: the {e(perm['metric'])} "
            f"when a column's values are shuffled ({perm['repeats']} shuffles; {int(perm['level'] * 100)}% "
            f"bootstrap interval over {perm['resamples']} resamples). Near zero: the model does not use it.</p>"
        )
        out.append(table(["column", "importance", "interval low", "interval high"],
                         [[c["column"], c["importance"], c["ci_low"], c["ci_high"]] for c in perm["columns"]]))
    att = x.get("attribution")
    if att and att.get("rows"):
        out.append(f"<h3>Mean absolute attribution ({e(att['units'])}, {att['rows']} explained validation rows)</h3>"
                   + bars(att["mean_abs"]))
        for cls, words in att.get("top_words", {}).items():
            if words:
                out.append(f"<h3>Words pushing towards {e(cls)}</h3>" +
                           table(["word", "mean attribution", "rows"], [[w, float(m), c] for w, m, c in words]))
    ex = x.get("examples", [])
    if ex:
        out.append("<h3>Explained validation rows</h3><p class='muted'>The most confident errors, then a sample of "
                   "correct predictions.</p>")
        for item in ex:
            out.append(row_view(item["explanation"], item["inputs"], item.get("images"), title=item["title"],
                                truth=item.get("truth")))
    return "\n".join(out)
