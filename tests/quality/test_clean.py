from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pacsv

import hone
from tests.quality.test_audit import _planted


def test_fit_with_clean_merges_labels_drops_duplicates_and_records_it(tmp_path: Path) -> None:
    t = _planted()
    src = tmp_path / "planted.csv"
    pacsv.write_csv(t, src)
    before = src.read_bytes()
    m = hone.fit(src, target="label", output=tmp_path / "run", clean=True, epochs=2, show_progress=False)
    rec = json.loads((tmp_path / "run" / "cleaning.json").read_text())
    assert rec["label_merges"] == {"Positive ": "positive", "POSITIVE": "positive", "positive!": "positive"}
    assert rec["dropped_duplicates"] == 3 and rec["dropped_conflicting"] == 2
    assert 40 in rec["dropped_rows"]["conflicting_labels"] and len(rec["dropped_rows"]["duplicates"]) == 3
    assert set(m.classes) == {"negative", "positive", "rare"}
    fp = json.loads((tmp_path / "run" / "data.fingerprint.json").read_text())
    assert fp["rows"] == t.num_rows - 5
    assert src.read_bytes() == before  # the source is never touched
    plain = hone.fit(src, target="label", output=tmp_path / "plain", epochs=1, show_progress=False)
    assert "Positive " in plain.classes and not (tmp_path / "plain" / "cleaning.json").exists()


def test_every_fit_audits_first_unless_told_not_to(tmp_path: Path, tab_table) -> None:
    from hone.cli import main

    hone.fit(tab_table, target="label", output=tmp_path / "a", epochs=1, show_progress=False)
    q = json.loads((tmp_path / "a" / "quality.json").read_text())
    assert q["rows"] == tab_table.num_rows and any(f["check"] == "missing_values" for f in q["findings"])
    src = tmp_path / "t.csv"
    pacsv.write_csv(tab_table, src)
    assert main(["-q", "fit", str(src), "--target", "label", "--epochs", "1", "--no-progress", "--no-audit",
                 "--output", str(tmp_path / "b")]) == 0
    assert not (tmp_path / "b" / "quality.json").exists()
