"""``report.html``: one self-contained page per run (inline SVG plots, no script, nothing fetched),
rendered from the run folder's JSON files, so ``hone report RUN_DIR`` can render it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hone.evaluation.metrics import HIGHER_IS_BETTER
from hone.pages.attributions import VIEW_CSS
from hone.pages.html import CSS as _CSS
from hone.pages.html import e as _e
from hone.pages.html import fmt as _fmt
from hone.pages.html import table as _table

_COLORS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700"]


def line_chart(series: list[tuple[str, list[list[float]]]], *, x_label: str, y_label: str, diagonal: bool = False,
               width: int = 340, height: int = 280, scatter: bool = False) -> str:
    """An inline SVG chart of ``(name, [[x, y], ...])`` series."""
    pts = [p for _, s in series for p in s]
    if not pts:
        return "<p class='muted'>(no data)</p>"
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if diagonal:
        x0, y0, x1, y1 = min(x0, y0), min(x0, y0), max(x1, y1), max(x1, y1)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    m = 42
    sx = lambda x: m + (x - x0) / (x1 - x0) * (width - m - 10)  # noqa: E731
    sy = lambda y: height - m + 10 - (y - y0) / (y1 - y0) * (height - m - 10)  # noqa: E731
    parts = [f"<svg width='{width}' height='{height}' role='img' "
             f"aria-label='{_e(y_label)} by {_e(x_label)}'>",
             f"<rect x='{m}' y='0' width='{width - m - 10}' height='{height - m + 10}' fill='#fff' stroke='#d0d7de'/>"]
    for t in range(5):
        fx, fy = x0 + (x1 - x0) * t / 4, y0 + (y1 - y0) * t / 4
        parts.append(
            f"<text x='{sx(fx):.1f}' y='{height - m + 24}' font-size='10' text-anchor='middle'>{fx:.3g}</text>"
        )
        parts.append(f"<text x='{m - 4}' y='{sy(fy) + 3:.1f}' font-size='10' text-anchor='end'>{fy:.3g}</text>")
    if diagonal:
        parts.append(f"<line x1='{sx(x0):.1f}' y1='{sy(x0):.1f}' x2='{sx(x1):.1f}' y2='{sy(x1):.1f}' "
                     "stroke='#8c959f' stroke-dasharray='4 3'/>")
    for i, (name, s) in enumerate(series):
        c = _COLORS[i % len(_COLORS)]
        if scatter:
            parts += [f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='2' fill='{c}' fill-opacity='.6'/>" for x, y in s]
        else:
            d = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(s))
            parts.append(f"<path d='{d}' fill='none' stroke='{c}' stroke-width='2'/>")
        parts.append(f"<text x='{m + 8}' y='{14 + 14 * i}' font-size='11' fill='{c}'>{_e(name)}</text>")
    parts.append(
        f"<text x='{(m + width) / 2:.0f}' y='{height - 4}' font-size='11' text-anchor='middle'>{_e(x_label)}</text>"
    )
    parts.append(f"<text x='10' y='{(height - m) / 2:.0f}' font-size='11' text-anchor='middle' "
                 f"transform='rotate(-90 10 {(height - m) / 2:.0f})'>{_e(y_label)}</text></svg>")
    return "".join(parts)


def _figure(caption: str, body: str) -> str:
    return f"<figure data-plot='{_e(caption)}'><figcaption>{_e(caption)}</figcaption>{body}</figure>"


def _read(run: Path, name: str, default: Any = None) -> Any:
    p = run / name
    if not p.exists():
        return default
    return (
        yaml.safe_load(p.read_text(encoding="utf-8"))
        if p.suffix == ".yaml"
        else json.loads(p.read_text(encoding="utf-8"))
    )


def render(run: Path, name: str | None = None) -> str:
    """The report page of the run folder ``run`` (titled ``name``, default the folder's name)."""
    name = name or run.name
    m, schema = _read(run, "metrics.json", {}), _read(run, "schema.json", {})
    history, fp, cfg = (
        _read(run, "history.json", []),
        _read(run, "data.fingerprint.json", {}),
        _read(run, "config.resolved.yaml", {}),
    )
    task = schema.get("task", "")
    headline = [k for k in HIGHER_IS_BETTER if k in m.get("test", {})]
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hone report: {_e(name)}</title>"
           f"<style>{_CSS}{VIEW_CSS}</style></head><body>",
           f"<h1>hone report: {_e(name)}</h1><p class='muted'>target <b>{_e(schema.get('target'))}</b>, task "
           f"{_e(task)}; model used: <b>{_e(m.get('model', {}).get('chosen', 'network'))}</b> "
           f"({_e(m.get('model', {}).get('why', ''))})</p>"]
    if m.get("verdict"):
        out.append(f"<p class='verdict'>{_e(m['verdict'])}</p>")
    out.append(_model_card(m, schema, fp, cfg, headline))
    out.append("<h2>Metrics</h2>" + _metrics_table(m, headline))
    if m.get("federated"):
        out.append(_federation(m["federated"], cfg.get("train", {}).get("metric", ""), history))
    if m.get("leaderboard"):
        out.append(_leaderboard(m))
    out.append("<h2>Plots</h2><div class='plots'>" + _plots(m, history, task, cfg) + "</div>")
    fig = m.get("figures", {})
    if fig.get("confusion_matrix"):
        cm = fig["confusion_matrix"]
        out.append(
            "<h2>Confusion matrix (test; rows: truth, columns: prediction)</h2>"
            + _table(["truth \\ predicted", *cm["classes"]], [[c, *r] for c, r in zip(cm["classes"], cm["counts"])])
        )
    if fig.get("residuals", {}).get("by_range"):
        rows = fig["residuals"]["by_range"]
        out.append("<h2>Error by target range (test)</h2>" +
                   _table(["target from", "to", "rows", "MAE", "mean error (bias)"],
                          [[r["from"], r["to"], r["rows"], r["mae"], r["bias"]] for r in rows]))
    if fig.get("slices"):
        out.append("<h2>Slices (test)</h2><p class='muted'>Highlighted: much worse than the whole test split.</p>")
        for col, rows in fig["slices"].items():
            keys = [k for k in ("rows", "macro_f1", "accuracy", "mae") if rows and k in rows[0]]
            out.append(f"<h3>{_e(col)}</h3>" + _table([col, *keys], [[r["value"], *[r[k] for k in keys]] for r in rows],
                                                        ["worse" if r["worse"] else "" for r in rows]))
    if fig.get("worst_errors"):
        rows = fig["worst_errors"]
        keys = [k for k in rows[0] if k != "inputs"]
        cols = list(rows[0]["inputs"])
        out.append("<h2>Test rows wrong with the highest confidence</h2>" +
                   _table([*keys, *cols], [[r[k] for k in keys] + [r["inputs"].get(c) for c in cols] for r in rows]))
    explained = _read(run, "explain.json")
    if explained and not explained.get("skipped"):
        from hone.pages.attributions import importance_section

        out.append(importance_section(explained))
    search = _read(run, "tune.json")
    if search:
        out.append(_search(search))
    if m.get("stages"):
        out.append(_stages(m))
    out.append("<h2>Data</h2>" + _data(schema, fp))
    quality = _read(run, "quality.json")
    if quality and quality.get("findings"):
        from hone.pages.audit import findings_table

        le = quality.get("label_error_check") or {}
        note = (f" Likely label errors: {le['flagged']} flagged of {le['rows_checked']} checked." if le and not
                le.get("not_judged") else "")
        cleaned = _read(run, "cleaning.json")
        if cleaned:
            note += (
                f" Cleaned before training (--clean): {cleaned.get('dropped_label_errors', 0)} label errors, "
                f"{cleaned['dropped_duplicates']} duplicates and {cleaned['dropped_conflicting']} conflicting rows "
                f"dropped, {len(cleaned['label_merges'])} label spellings merged."
            )
        out.append("<h2>Data quality (audit)</h2><p class='muted'>quality.json has every finding with examples." +
                   _e(note) + "</p>" + findings_table(quality["findings"]))
    out.append("<h2>Resolved config</h2><pre>" + _e(yaml.safe_dump(cfg, sort_keys=False)) + "</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def _leaderboard(m: dict[str, Any]) -> str:
    """hone auto's candidates: validation figures, costs, weights, and what was skipped or excluded."""
    board = m["leaderboard"]
    key = next((k for r in board for k in r if k.startswith("validation_") and k != "validation_loss"), "")
    rows = [[r["name"], r.get("family", ""), r.get("status", "fitted"), r.get(key, ""), r.get("validation_loss", ""),
             r.get("fit_seconds", ""), r.get("scoring_rows_per_second", ""), r.get("weight", ""),
             r.get("why") or r.get("excluded") or _fit_note(r)] for r in board]
    ens = m.get("ensemble") or {}
    text = (f"Ensemble: {', '.join(f'{n} ({w:g})' for n, w in zip(ens.get('members', []), ens.get('weights', [])))}; "
            f"weighted on {ens.get('selected_on', 'the validation rows')}; "
            f"it scores {ens.get('scoring_rows_per_second', 0):,.0f} rows/s on the validation rows." if ens else "")
    return ("<h2>Leaderboard (hone auto)</h2><p class='muted'>Every candidate on the validation rows (bags: out of "
            f"fold). {_e(text)}</p>" + _table(["candidate", "family", "status", key, "validation loss", "fit s",
                                               "rows/s", "weight", "note"], rows))


def _fit_note(r: dict[str, Any]) -> str:
    """How a fitted candidate came about: its k-fold repeats, and whether the time the network left paid for it."""
    notes = []
    if r.get("repeats", 1) > 1:
        notes.append(f"{r['repeats']} k-fold repeats")
    if r.get("fitted_after_the_network"):
        notes.append("fitted in the time the network left")
    if r.get("strategy"):
        notes.append(f"strategy {r['strategy']}, the one the time afforded")
    return "; ".join(notes)


def _stages(m: dict[str, Any]) -> str:
    """Seconds per stage, and the time limit with what was cut to keep it."""
    budget = m.get("budget") or {}
    note = ""
    if budget:
        note = (f"<p class='muted'>Time limit {budget['limit_seconds']:g} s (planned end "
                f"{budget['planned_end_seconds']:g} s). " + _e("; ".join(budget.get("cuts") or ["Nothing was cut."]))
                + "</p>")
    return "<h2>Time per stage</h2>" + note + _table(["stage", "seconds"], [[k, v] for k, v in m["stages"].items()])


def _metrics_table(m: dict[str, Any], headline: list[str]) -> str:
    cols = [c for c in ("validation", "test", "network", "baseline") if c in m and isinstance(m[c], dict)]
    names = {"network": "test: network", "baseline": "test: baseline"}
    rows = []
    for k in headline:
        row = [k] + [m[c].get(k, float("nan")) for c in cols]
        iv = m.get("intervals", {}).get(k)
        row.append(f"[{iv['ci_low']:.4f}, {iv['ci_high']:.4f}]" if iv else "")
        d = m.get("delta", {}).get(k)
        row.append(f"{d['value']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]" if d else "")
        rows.append(row)
    extra = ""
    if m.get("threshold"):
        t = m["threshold"]
        extra += (
            f"<p>Decision threshold <b>{t['threshold']:.4f}</b>, chosen on validation for {_e(t['objective'])}.</p>"
        )
    if m.get("calibration"):
        c = m["calibration"]
        extra += (f"<p>Temperature {c['temperature']:.3f} fitted on validation: expected calibration error "
                  f"{_fmt(c['ece_before'])} before, {_fmt(c['ece_after'])} after.</p>")
    return _table(["metric", *[names.get(c, c) for c in cols], "test interval", "network − baseline"], rows) + extra


def _plots(m: dict[str, Any], history: list[dict[str, Any]], task: str, cfg: dict[str, Any]) -> str:
    fig = m.get("figures", {})
    out = []
    curves = fig.get("curves", {})
    if curves.get("roc"):
        out.append(
            _figure(
                "ROC curve (test)",
                line_chart(
                    [("chosen model", curves["roc"])],
                    x_label="false positive rate",
                    y_label="true positive rate",
                    diagonal=True,
                ),
            )
        )
        out.append(
            _figure(
                "Precision-recall curve (test)",
                line_chart(
                    [
                        ("chosen model", curves["pr"]),
                        ("positive rate", [[0, curves["positive_rate"]], [1, curves["positive_rate"]]]),
                    ],
                    x_label="recall",
                    y_label="precision",
                ),
            )
        )
    rel = fig.get("reliability", {})
    if rel:
        series = [(f"{k} calibration", [[b["confidence"], b["accuracy"]] for b in v]) for k, v in
                  (("before", rel.get("before", [])), ("after", rel.get("after", []))) if v]
        out.append(_figure("Reliability diagram (test)", line_chart(series, x_label="confidence", y_label="accuracy",
                                                                     diagonal=True)))
    if fig.get("residuals"):
        out.append(
            _figure(
                "Predictions against truth (test sample)",
                line_chart(
                    [("rows", fig["residuals"]["points"])],
                    x_label="truth",
                    y_label="prediction",
                    diagonal=True,
                    scatter=True,
                ),
            )
        )
    metric = cfg.get("train", {}).get("metric", "")
    if history:
        val = [[h["step"], h[metric]] for h in history if isinstance(h.get(metric), (int, float))]
        loss = [[h["step"], h["train_loss"]] for h in history if isinstance(h.get("train_loss"), (int, float))
                and h["train_loss"] == h["train_loss"]]
        out.append(_figure("Learning curve: validation", line_chart([(f"validation {metric}", val)], x_label="step",
                                                                     y_label=metric)))
        if loss:
            out.append(_figure("Learning curve: training loss", line_chart([("train loss", loss)], x_label="step",
                                                                            y_label="loss")))
    return "".join(out)


def _federation(f: dict[str, Any], metric: str, history: list[dict[str, Any]]) -> str:
    """A federated run: how it was trained (no row left its silo) and its rounds, silo by silo."""
    silos = [s["name"] for s in f.get("silos", [])]
    privacy = f.get("privacy")
    text = (
        f"Trained with {_e(f.get('aggregation', f.get('strategy', '')))} over {f.get('clients')} silos "
        f"for {f.get('rounds')} round(s) of "
        f"{f.get('local_epochs')} local epoch(s); no row left its silo. Each client sent "
        f"{f.get('bytes_up_per_client_round', 0) / 1e6:.2f} MB per round ({f.get('trainable_parameters', 0):,} "
        f"trainable parameters: {_e(f.get('fine_tuning', ''))})."
    )
    if privacy:
        text += (f" Differential privacy at the client level: epsilon {privacy['epsilon']:.3g} at delta "
                 f"{privacy['delta']:g} (noise multiplier {privacy['noise_multiplier']}, clipping norm "
                 f"{privacy['clipping_norm']}).")
    rows = [[h["round"], f"{h['replied']}/{h['clients']}", h.get("train_loss"), h.get(metric),
             *[h.get("silos", {}).get(s, {}).get(metric) for s in silos]] for h in history if "round" in h]
    table = _table(["round", "clients", "train loss", f"validation {metric}", *silos], rows) if rows else ""
    test = f.get("test_per_silo", {})
    per = (
        _table(
            ["silo", *[k for k in HIGHER_IS_BETTER if any(k in v for v in test.values())]],
            [[s, *[v.get(k) for k in HIGHER_IS_BETTER if any(k in x for x in test.values())]] for s, v in test.items()],
        )
        if test
        else ""
    )
    return (f"<h2>Federation</h2><p>{text}</p>{table}"
            + (f"<h3>Test, silo by silo (each silo's own test split)</h3>{per}" if per else ""))


def _model_card(m: dict[str, Any], schema: dict[str, Any], fp: dict[str, Any], cfg: dict[str, Any],
                headline: list[str]) -> str:
    rows = fp.get("rows_per_split", {})
    iv = m.get("intervals", {})
    figures = ", ".join(
        f"{k} {iv[k]['value']:.3f} [{iv[k]['ci_low']:.3f}, {iv[k]['ci_high']:.3f}]" for k in headline if k in iv
    )
    limits = []
    if m.get("verdict"):
        limits.append(m["verdict"])
    skipped = {k: v for k, v in fp.get("skipped", {}).items() if v}
    if skipped:
        limits.append("Rows not used: " + ", ".join(f"{v} ({k.replace('_', ' ')})" for k, v in skipped.items()) + ".")
    worse = [f"{c}={r['value']}" for c, rs in m.get("figures", {}).get("slices", {}).items() for r in rs if r["worse"]]
    if worse:
        limits.append("Much worse than average on: " + ", ".join(worse[:10]) + ".")
    if schema.get("coerced"):
        limits.append("Cells read as missing: " + ", ".join(f"{n} in {c}" for c, n in schema["coerced"].items()) + ".")
    limits.append("Measured on one held-out test split of the same source; new data that differs from it "
                  "(time, population, collection) may score worse.")
    return ("<h2>Model card</h2>" + _table(["", ""], [
        ["task", f"{schema.get('task')} on {schema.get('target')!r}" +
         (f" ({len(schema.get('classes', []))} classes)" if schema.get("classes") else "")],
        ["data", f"{cfg.get('data', {}).get('source') or 'in-memory table'}: " +
         " / ".join(f"{rows.get(s, 0)} {s}" for s in ("train", "validation", "test")) + " rows"],
        ["model", f"{m.get('model', {}).get('chosen', 'network')}; strategy {cfg.get('model', {}).get('strategy')}, "
                  f"baseline {m.get('model', {}).get('baseline')}"],
        ["intended use", f"scoring rows like the training data to predict {schema.get('target')!r}; decisions with "
                         "consequences for people need review of the slices and errors below"],
        ["test metrics", figures or "—"],
        ["limitations", " ".join(limits)],
    ], left=2))


def _data(schema: dict[str, Any], fp: dict[str, Any]) -> str:
    cols = [[c["name"], c["role"], c["dtype"], c["reason"]] for c in schema.get("columns", [])]
    cols += [[k, "dropped", "", v] for k, v in schema.get("dropped", {}).items()]
    out = _table(["column", "role", "type", "why"], cols)
    cc = fp.get("class_counts", {})
    if cc:
        classes = sorted({c for s in cc.values() for c in s})
        out += _table(["class", *cc], [[c, *[cc[s].get(c, 0) for s in cc]] for c in classes])
    return out


def _search(t: dict[str, Any]) -> str:
    """The hyperparameter search that chose this run's configuration (``tune.json``)."""
    best, metric = t.get("best") or {}, t.get("metric", "")
    trials = [x for x in t.get("trials", []) if x.get("value") is not None or x.get("intermediate")]
    done = sorted((x for x in trials if x["state"] == "complete"), key=lambda x: x["number"])
    maximize = t.get("direction") == "maximize"
    running, best_so_far = None, []
    for x in done:
        if running is None or (x["value"] > running if maximize else x["value"] < running):
            running = x["value"]
        best_so_far.append([x["number"], running])
    pruned = [[x["number"], x["intermediate"][-1][1]] for x in trials if x["state"] == "pruned" and x["intermediate"]]
    history = line_chart([("best so far", best_so_far)], x_label="trial", y_label=f"validation {metric}")
    points = line_chart([("complete", [[x["number"], x["value"]] for x in done]), ("pruned (last value)", pruned)],
                        x_label="trial", y_label=f"validation {metric}", scatter=True)
    names = sorted({k for x in t.get("trials", []) for k in x.get("params", {})})
    rows = [
        [
            f"{x['number']} (defaults)" if x.get("defaults") else x["number"],
            x["state"],
            x.get("value"),
            x.get("seconds"),
            x.get("best_epoch"),
            *[x.get("params", {}).get(n) for n in names],
        ]
        for x in t.get("trials", [])
    ]
    marks = ["best" if x["number"] == best.get("number") else "" for x in t.get("trials", [])]
    imp = t.get("importances") or {}
    refit = t.get("refit") or {}
    return (
        f"<h2>Hyperparameter search</h2><p class='muted'>{t.get('finished')} of {t.get('trials_requested')} "
        f"trials finished ({t.get('pruned')} pruned by the {_e(t.get('pruner'))} pruner, {_e(t.get('sampler'))} "
        f"sampler) in {t.get('search_seconds', 0):.0f} s, on validation {_e(metric)} only. This run refits trial "
        f"{_e(best.get('number'))} (validation {_fmt(best.get('value'))}) on {_e(refit.get('fit_on', 'train'))}; "
        "it chose its model, calibration and threshold on validation rows the search never saw (when "
        "tune.choice_fraction > 0), and its test metrics above are the only look at the test split.</p>"
        "<div class='plots'>"
        + _figure("Optimisation history", history)
        + _figure("Trials", points)
        + "</div>"
        + (
            "<h3>Parameter importance (fANOVA)</h3>"
            + _table(["parameter", "importance"], [[k, v] for k, v in imp.items()])
            if imp
            else ""
        )
        + "<h3>Trials</h3>"
        + _table(["trial", "state", f"validation {metric}", "seconds", "best epoch", *names], rows, marks)
    )


def write_report(run: Path, name: str | None = None) -> Path:
    """Render ``run/report.html`` (atomically)."""
    from hone._io import write_text

    path = run / "report.html"
    write_text(path, render(run, name))
    return path


def compare(runs: list[Path]) -> tuple[str, str]:
    """Runs side by side: a text table for the console and an HTML page."""
    data = [(r, _read(r, "metrics.json", {})) for r in runs]
    keys = [k for k in HIGHER_IS_BETTER if any(k in m.get("test", {}) for _, m in data)]
    header = ["run", "model", *keys]
    rows = []
    for r, m in data:
        rows.append(
            [
                r.name,
                m.get("model", {}).get("chosen", "network"),
                *[m.get("test", {}).get(k, float("nan")) for k in keys],
            ]
        )
    text = "  ".join(f"{h:>14}" for h in header) + "\n" + "\n".join(
        "  ".join(f"{_fmt(v) if isinstance(v, float) else str(v):>14}" for v in row) for row in rows)
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hone compare</title><style>{_CSS}"
            f"</style></head><body><h1>Runs compared (test split)</h1>{_table(header, rows)}</body></html>")
    return text, page
