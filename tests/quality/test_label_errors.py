"""Likely label errors: flipped labels are found with their true label suggested; uninformative
features flag nothing; --clean drops the flagged rows and records them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

import hone

_WORDS = {"sport": "match goal team coach league score season player win cup",
          "money": "bank shares market profit price rate investor growth fund trade",
          "tech": "software phone chip internet users data computer online app device"}


def _texts(n: int = 900, flips: int = 30, seed: int = 0) -> tuple[pa.Table, set[int], dict[int, str]]:
    rng = np.random.default_rng(seed)
    classes = sorted(_WORDS)
    truth = [classes[i % 3] for i in range(n)]
    filler = "the a of and to in it is was for on with as at by".split()
    texts = [" ".join(rng.choice(_WORDS[c].split() + filler * 2, 14)) + f" note {i}" for i, c in enumerate(truth)]
    flipped = {int(i) for i in rng.choice(n, flips, replace=False)}
    given = [rng.choice([c for c in classes if c != t]) if i in flipped else t for i, t in enumerate(truth)]
    return pa.table({"text": texts, "label": given}), flipped, dict(enumerate(truth))


def test_flipped_text_labels_are_flagged_with_the_true_label(tmp_path: Path) -> None:
    table, flipped, truth = _texts()
    hone.audit(table, target="label", output=tmp_path)
    data = json.loads((tmp_path / "audit.json").read_text())
    found = {e["row"]: e for e in data["label_errors"]}
    hit = flipped & set(found)
    assert len(hit) >= 0.8 * len(flipped) and len(hit) >= 0.8 * len(found)
    assert all(found[r]["suggested"] == truth[r] and found[r]["given"] != truth[r] for r in hit)
    assert all(0.5 <= e["score"] <= 1 for e in found.values())
    assert [e["score"] for e in data["label_errors"]] == sorted(
        (e["score"] for e in data["label_errors"]), reverse=True
    )
    finding = next(f for f in data["findings"] if f["check"] == "label_errors")
    assert finding["count"] == len(found) and finding["remedy"]


def test_flipped_tabular_labels_are_flagged() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1200, 3))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no").astype(object)
    flipped = set(rng.choice(1200, 40, replace=False).tolist())
    for i in flipped:
        y[i] = "no" if y[i] == "yes" else "yes"
    t = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y.tolist()})
    report = hone.audit(t, target="y")
    found = {e["row"] for e in report.extras["label_errors"]}
    assert len(found & flipped) >= 0.6 * len(flipped) and len(found & flipped) >= 0.6 * len(found)


def test_labels_unrelated_to_the_features_are_not_judged() -> None:
    rng = np.random.default_rng(2)
    t = pa.table({"a": rng.normal(size=800), "y": rng.choice(["p", "q"], 800, p=[0.7, 0.3]).tolist()})
    report = hone.audit(t, target="y")
    assert report.extras["label_errors"] == [] and report.extras["label_error_check"]["not_judged"]
    assert not any(f.check == "label_errors" and f.count for f in report.findings)


def test_sampled_rows_keep_their_source_positions(tmp_path: Path) -> None:
    table, flipped, truth = _texts(n=900)
    # unlabelled rows in between shift positions: the reported row must still be the source's
    blank = pa.table({"text": ["nothing here at all"] * 100, "label": pa.nulls(100, pa.string())})
    mixed = pa.concat_tables([blank, table])
    report = hone.audit(mixed, target="label", **{"quality.label_error_rows": 600})
    check = report.extras["label_error_check"]
    assert check["rows_checked"] == 600 and check["rows_labelled"] == 900
    texts = mixed["text"].to_pylist()
    labels = mixed["label"].to_pylist()
    for e in report.extras["label_errors"]:
        assert labels[e["row"]] == e["given"] and texts[e["row"]] is not None and e["row"] >= 100


def test_clean_drops_flagged_rows_before_duplicates(tmp_path: Path) -> None:
    table, flipped, _ = _texts(n=600, flips=20)
    src = tmp_path / "t.csv"
    pacsv.write_csv(table, src)
    hone.fit(src, target="label", output=tmp_path / "run", clean=True, epochs=1, show_progress=False,
             max_length=16)
    rec = json.loads((tmp_path / "run" / "cleaning.json").read_text())
    quality = json.loads((tmp_path / "run" / "quality.json").read_text())
    dropped = set(rec["dropped_rows"]["label_errors"])
    assert dropped == {e["row"] for e in quality["label_errors"]} and rec["dropped_label_errors"] == len(dropped)
    assert len(dropped & flipped) >= 0.7 * len(flipped)
    fp = json.loads((tmp_path / "run" / "data.fingerprint.json").read_text())
    assert fp["rows"] == table.num_rows - len(dropped)
