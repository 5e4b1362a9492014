"""Attributions: completeness of Integrated Gradients, a planted signal found, the baseline's SHAP
values adding up, blends and images explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hone
from hone.testing import make_image_table, make_table

WORDS = ["the", "a", "coffee", "tea", "box", "it", "was", "this", "product", "and", "very", "price", "arrived"]


def planted(n: int, seed: int) -> pa.Table:
    """Only ``amount`` (above 0.8) and the word ``broken`` decide the label; ``noise_a``, ``noise_b``,
    ``region`` and the other words are noise."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(0, 1, n)
    has_word = rng.random(n) < 0.3
    notes = []
    for i in range(n):
        words = list(rng.choice(WORDS, 6))
        if has_word[i]:  # replaces a word: a longer note would give the label away by its length
            words[int(rng.integers(0, 6))] = "broken"
        notes.append(" ".join(words))
    label = np.where((amount > 0.8) | has_word, "fraud", "ok")
    return pa.table({"note": notes, "amount": amount, "noise_a": rng.normal(0, 1, n), "noise_b": rng.normal(0, 1, n),
                     "region": rng.choice(["n", "s", "e", "w"], n).tolist(), "label": label.tolist()})


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> hone.Model:
    out = tmp_path_factory.mktemp("planted") / "run"
    return hone.fit(planted(1200, 0), target="label", output=out, backbone=str(tiny_backbone), epochs=6,
                    batch_size=32, lr=2e-3, show_progress=False, max_length=16, audit=False,
                    **{"train.head_lr": 5e-3, "evaluate.model": "network", "evaluate.explain": False})


def test_integrated_gradients_are_complete(planted_model: hone.Model) -> None:
    rows = planted_model.explain(planted(40, 1), steps="auto")
    for r in rows:
        net = r["network"]
        gap = net["score"] - net["reference"]
        total = sum(net["columns"].values())
        # the attributions add up to F(row) - F(reference), up to the delta Captum reports
        assert abs(total - gap) <= abs(net["delta"]) + 1e-4
        assert abs(net["delta"]) <= max(0.05 * abs(gap), 0.02)  # what "auto" steps promise
        assert net["steps"] in (16, 32, 64, 128, 256)
        assert r["columns"] == net["columns"] and r["units"] == "log-odds"
        # the words of the note carry the column's attribution
        assert sum(w[1] for w in net["words"]["note"]) == pytest.approx(net["columns"]["note"])
    # the score is the network's log-odds of the explained class, which is the predicted one
    import torch

    from hone.models.precision import autocast

    # computed as the model computes (bf16 autocast on a CPU with native bf16, fp32 elsewhere)
    with torch.no_grad(), autocast(planted_model.precision, planted_model.device):
        logits = planted_model.net(planted_model.pre.inputs(planted(40, 1))).float().numpy()
    k = np.array([planted_model.classes.index(r["explained_class"]) for r in rows])
    assert (k == planted_model.decision.predict(planted_model.predict_proba(planted(40, 1)))).all()
    gap = logits[np.arange(40), k] - logits[np.arange(40), 1 - k]
    # bf16 keeps 8 bits of mantissa: the explained score rounds to about 1/128 of its size
    atol, rtol = (5e-3, 1e-2) if planted_model.precision == "bf16" else (1e-4, 0.0)
    assert np.allclose([r["network"]["score"] for r in rows], gap, atol=atol, rtol=rtol)


def test_planted_signal_gets_the_largest_attributions(planted_model: hone.Model) -> None:
    data = planted(300, 2)
    rows = planted_model.explain(data, target_class="fraud")
    mean_abs = {c: np.mean([abs(r["columns"][c]) for r in rows]) for c in ("amount", "noise_a", "noise_b", "region")}
    assert mean_abs["amount"] > 3 * max(mean_abs["noise_a"], mean_abs["noise_b"], mean_abs["region"]), mean_abs
    # in rows that hold the word, it is the note's most influential word
    with_word = [r for r in rows if any(w[0] == "broken" for w in r["network"]["words"]["note"])]
    assert len(with_word) > 50
    top = [max(r["network"]["words"]["note"], key=lambda w: w[1])[0] for r in with_word]
    assert np.mean([t == "broken" for t in top]) > 0.9
    # and it pushes towards fraud
    assert np.mean([next(w[1] for w in r["network"]["words"]["note"] if w[0] == "broken") > 0 for r in with_word]) > 0.9


def test_target_class_and_steps_are_honoured(planted_model: hone.Model) -> None:
    data = planted(6, 3)
    a = planted_model.explain(data, target_class="ok", steps=24)
    b = planted_model.explain(data, target_class="fraud", steps=24)
    for x, y in zip(a, b):
        assert x["explained_class"] == "ok" and y["explained_class"] == "fraud" and x["network"]["steps"] == 24
        # binary: the log-odds of one class is minus the other's, and so are the attributions
        assert x["network"]["score"] == pytest.approx(-y["network"]["score"], abs=1e-5)
        assert x["columns"]["amount"] == pytest.approx(-y["columns"]["amount"], abs=1e-5)
    with pytest.raises(hone.errors.ConfigError, match="not a class"):
        planted_model.explain(data, target_class="maybe")


@pytest.fixture(scope="module")
def tab_run(tmp_path_factory: pytest.TempPathFactory, tab_table: pa.Table) -> Path:
    out = tmp_path_factory.mktemp("tab") / "run"
    hone.fit(tab_table, target="label", output=out, epochs=3, show_progress=False, audit=False,
             **{"evaluate.explain": False})
    return out / "model"


@pytest.mark.parametrize("choice", ["baseline", "blend"])
def test_baseline_and_blend_are_explained(tab_run: Path, tab_table: pa.Table, choice: str) -> None:
    model = hone.load(tab_run)
    model.decision = model.decision.__class__(model=choice, blend_weight=0.5)
    data = tab_table.slice(0, 30)
    rows = model.explain(data)
    p = model.predict_proba(data)
    for i, r in enumerate(rows):
        base = r["baseline"]
        assert base["kind"] == "lightgbm"
        # LightGBM's SHAP values add up exactly to its raw score with the expected value
        assert sum(base["columns"].values()) + base["expected"] == pytest.approx(base["score"], abs=1e-6)
        assert set(base["columns"]) <= set(model.pre.schema.names())
        assert r["probability"] == pytest.approx(p[i, model.classes.index(r["explained_class"])])
        if choice == "baseline":
            assert "network" not in r and r["columns"] == base["columns"]
        else:
            assert "network" in r and r["units"] == "probability" and "0.50 x network + 0.50 x baseline" in r["how"]
            # each part rescaled to its own change of probability: the blend's columns add up to
            # the mix of the parts' probability changes
            net = r["network"]
            sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
            want = 0.5 * (sig(net["score"]) - sig(net["reference"])) + 0.5 * (
                sig(base["score"]) - sig(base["expected"])
            )
            assert sum(r["columns"].values()) == pytest.approx(want, abs=1e-3)
    # the baseline model explains the baseline's own probability
    if choice == "baseline":
        sig = 1 / (1 + np.exp(-np.array([r["baseline"]["score"] for r in rows])))
        raw = model.baseline.outputs(data)
        k = [model.classes.index(r["explained_class"]) for r in rows]
        assert np.allclose(sig, raw[np.arange(30), k], atol=1e-6)


def test_text_baseline_terms(tmp_path: Path, tiny_backbone: Path) -> None:
    table = make_table(300, seed=4).select(["review", "label"])
    model = hone.fit(table, target="label", output=tmp_path / "run", backbone=str(tiny_backbone), epochs=1,
                     show_progress=False, max_length=16, audit=False,
                     **{"evaluate.model": "baseline", "evaluate.explain": False})
    r = model.explain(table.slice(0, 5))[0]
    b = r["baseline"]
    assert b["kind"] == "tfidf-linear" and b["terms"]
    assert b["columns"]["review"] + b["expected"] == pytest.approx(b["score"], abs=1e-5)
    words = table.column("review")[0].as_py().split()
    assert all(any(part in words for part in t.split()) for t, _ in b["terms"])


def test_image_maps(tmp_path: Path, tiny_vit: Path) -> None:
    table = make_image_table(tmp_path / "img", 120, kind="bytes")
    model = hone.fit(table, target="label", output=tmp_path / "run", image_backbone=str(tiny_vit), epochs=2,
                     show_progress=False, audit=False, **{"evaluate.model": "network", "evaluate.explain": False})
    rows = model.explain(table.slice(0, 4), steps=32)
    for r in rows:
        m = r["network"]["images"]["photo"]
        assert m["side"] ** 2 == len(m["map"]) and m["side"] <= 32
        # the map's cells add up to the column's attribution, and the columns to the gap
        assert sum(m["map"]) == pytest.approx(r["columns"]["photo"], abs=1e-4)
        net = r["network"]
        assert abs(sum(net["columns"].values()) - (net["score"] - net["reference"])) <= abs(net["delta"]) + 1e-4
    # the HTML view shows each image under its heat map, and renders in a real browser
    from hone.explain import iter_explained
    from hone.explain.output import write_explanations
    from tests.browser import render

    page = tmp_path / "images.html"
    write_explanations(model, iter_explained(model, table, rows=3, steps=16), page)
    dom, errors = render(page, tmp_path / "images.png")
    assert errors == ""
    assert dom.count('class="heat"') == 3 and dom.count('src="data:image/png;base64,') >= 6
