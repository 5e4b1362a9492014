"""Model choice, thresholds and calibration end to end: what is chosen on validation is what test
metrics, predict and a reloaded model use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hone


def _imbalanced(n: int = 3000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    logit = -4.2 + 1.6 * x1 + 0.8 * x2
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    shop = rng.choice(["a", "b", "c", "d"], n)
    return pa.table({"x1": x1, "x2": x2, "shop": shop, "fraud": np.where(y, "yes", "no")})


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory):
    t = _imbalanced()
    out = tmp_path_factory.mktemp("fraud") / "run"
    return hone.fit(t, target="fraud", output=out, show_progress=False, epochs=6), out, t


def test_metrics_json_reports_baseline_delta_intervals_threshold_calibration(fraud) -> None:
    model, run, t = fraud
    m = json.loads((run / "metrics.json").read_text())
    assert {"validation", "test", "network", "baseline", "delta", "intervals", "threshold", "calibration", "model",
            "verdict"} <= set(m)
    assert m["model"]["chosen"] in ("network", "baseline", "blend") and m["model"]["validation"]
    for k in ("macro_f1", "accuracy", "roc_auc", "pr_auc"):
        iv = m["intervals"][k]
        assert iv["ci_low"] <= iv["value"] <= iv["ci_high"]
        d = m["delta"][k]
        assert d["ci_low"] <= d["value"] <= d["ci_high"]
        assert np.isclose(d["value"], m["network"][k] - m["baseline"][k])
    assert m["threshold"]["objective"] == "macro_f1" and 0 < m["threshold"]["threshold"] <= 1.0000001
    assert m["calibration"]["ece_after"] <= m["calibration"]["ece_before"] + 1e-9
    assert m["baseline"]["n"] == m["test"]["n"] and "baseline" in m["verdict"]


def test_accuracy_is_at_least_the_majority_rate_with_the_chosen_threshold(fraud) -> None:
    model, _, _ = fraud
    test = model.metrics["test"]
    majority = max(s["support"] for s in test["per_class"].values()) / test["n"]
    assert test["accuracy"] >= majority - 0.01 and test["macro_f1"] > 0.6


def test_the_validation_threshold_is_the_one_predict_applies(fraud, tmp_path: Path) -> None:
    model, run, t = fraud
    threshold = model.metrics["threshold"]["threshold"]
    proba = model.predict_proba(t)
    labels = model.predict(t)
    assert np.array_equal(labels == "yes", proba[:, 1] >= threshold)
    loaded = hone.load(run / "model")
    assert loaded.decision == model.decision
    assert np.allclose(loaded.predict_proba(t), proba, atol=1e-6) and np.array_equal(loaded.predict(t), labels)


@pytest.mark.parametrize("choice", ["baseline", "blend"])
def test_a_requested_choice_is_used_and_survives_a_round_trip(tmp_path: Path, tab_table: pa.Table, choice: str) -> None:
    m = hone.fit(tab_table, target="label", output=tmp_path / "r", show_progress=False, epochs=2, model=choice)
    assert m.decision.model == choice and m.metrics["model"]["chosen"] == choice
    if choice == "baseline":
        assert m.metrics["test"]["macro_f1"] == pytest.approx(m.metrics["baseline"]["macro_f1"])
    loaded = hone.load(tmp_path / "r" / "model")
    assert (tmp_path / "r" / "model" / "baseline" / "lightgbm.txt").is_file()
    assert np.allclose(loaded.predict_proba(tab_table), m.predict_proba(tab_table), atol=1e-6)
    cfg = (tmp_path / "r" / "config.resolved.yaml").read_text()
    assert f"model: {choice}" in cfg


def test_report_renders_in_a_real_browser_with_every_plot(fraud, tmp_path: Path) -> None:
    import re
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from browser import render

    _, run, _ = fraud
    page = run / "report.html"
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text  # nothing fetched
    shot = Path(__file__).resolve().parents[2] / "test-artifacts" / "report.png"
    dom, errors = render(page, shot)
    assert errors == "", errors
    plots = re.findall(r"<figure data-plot=\"([^\"]+)\"", dom)
    expected = {"ROC curve (test)", "Precision-recall curve (test)", "Reliability diagram (test)",
                "Learning curve: validation", "Learning curve: training loss"}
    assert expected <= set(plots), plots
    figures = re.findall(r"<figure data-plot=.*?</figure>", dom, flags=re.S)
    assert len(figures) == len(plots) and all("<svg" in f for f in figures)
    assert "Model card" in dom and "Confusion matrix" in dom
    assert "Slices (test)" in dom and "wrong with the highest confidence" in dom
    assert shot.stat().st_size > 10_000


def test_report_and_compare_commands(fraud, tmp_path: Path, capsys) -> None:
    from hone.cli import main

    _, run, _ = fraud
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()
    assert main(["compare", str(run), str(run), "--output", str(tmp_path / "c.html")]) == 0
    out = capsys.readouterr().out
    assert out.count("network") >= 2 and "macro_f1" in out and (tmp_path / "c.html").is_file()
    assert main(["report", str(tmp_path)]) == 2


def test_the_browser_check_sees_console_errors(tmp_path: Path) -> None:
    # the check above could fail: a page with a script error is reported
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from browser import render

    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFn();</script></body></html>")
    _, errors = render(bad, tmp_path / "bad.png")
    assert "undefinedFn" in errors


def test_a_table_the_baseline_cannot_use_still_fits(tmp_path: Path, tiny_backbone: Path) -> None:
    # one-letter words: TF-IDF finds no token, so there is no baseline; the network is evaluated alone
    notes = [f"{chr(97 + i % 26)} {chr(97 + i // 26 % 26)} {chr(97 + i % 7)}" for i in range(200)]
    t = pa.table({"note": notes, "label": ["x", "y"] * 100})
    m = hone.fit(t, target="label", output=tmp_path / "r", text=["note"], backbone=str(tiny_backbone), epochs=1,
                 show_progress=False, max_length=8)
    assert m.baseline is None and m.metrics["model"]["chosen"] == "network" and "delta" not in m.metrics
    from hone.errors import DataError

    with pytest.raises(DataError, match="baseline cannot"):
        hone.fit(t, target="label", output=tmp_path / "r2", text=["note"], backbone=str(tiny_backbone), epochs=1,
                 show_progress=False, max_length=8, model="baseline")
    assert not (tmp_path / "r2").exists()
