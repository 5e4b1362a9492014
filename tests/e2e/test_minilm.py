"""The real bundled all-MiniLM-L6-v2, fine-tuned on a small slice of real product reviews."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import hone
from hone.config import bundled_backbone


def test_minilm_fine_tune_learns_and_reloads(tmp_path: Path, fine_foods: Path) -> None:
    model = hone.fit(f"sql:SELECT review, score FROM '{fine_foods}'", target="score", output=tmp_path / "run",
                     max_rows=256, max_eval_rows=128, epochs=2, max_length=64, show_progress=False,
                     audit=False,  # the audit of these 4,000 reviews is tested elsewhere; this is about MiniLM
                     **{"evaluate.explain": True, "evaluate.explain_examples": 16})
    assert Path(model.meta["config"]["model"]["backbone"]) == Path(bundled_backbone())
    test = model.metrics["network"]  # the fine-tuned MiniLM itself, whatever auto chose
    # 65% of rows are "great": always answering it gives macro-F1 0.39; the fine-tune must do better.
    assert test["n"] == 128 and test["macro_f1"] > 0.55, test
    sample = f"sql:SELECT review FROM '{fine_foods}' LIMIT 40"
    loaded = hone.load(tmp_path / "run" / "model")
    assert np.allclose(model.predict_proba(sample), loaded.predict_proba(sample), atol=1e-5)
    assert (tmp_path / "run" / "model" / "backbones" / "text" / "tokenizer.json").exists()
    # the run explains itself: the review is what it relies on, with words from real reviews
    import json

    x = json.loads((tmp_path / "run" / "explain.json").read_text())
    assert x["permutation"]["columns"][0]["column"] == "review" and x["permutation"]["columns"][0]["ci_low"] > 0
    assert x["attribution"]["rows"] == 16 and any(x["attribution"]["top_words"].values())
    rows = loaded.explain(sample, rows=3)
    for r in rows:
        if "network" in r:  # Integrated Gradients on the real MiniLM: complete within its delta
            net = r["network"]
            assert abs(sum(net["columns"].values()) - (net["score"] - net["reference"])) <= abs(net["delta"]) + 1e-3
            assert all(w[0] for w in net["words"]["review"])
