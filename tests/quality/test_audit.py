"""The audit finds planted problems: missing values, wrong types, outliers, exact and conflicting
duplicates, label variants, rare classes and imbalance; it changes nothing in the source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

import hone
from hone.cli import main


def _planted(n: int = 600) -> pa.Table:
    rng = np.random.default_rng(0)
    x = rng.normal(50, 5, n)
    x[[7, 99]] = [500.0, -400.0]  # outliers at rows 7 and 99
    shop = rng.choice(["north", "south", "east"], n).astype(object)
    shop[rng.random(n) < 0.2] = None  # 20% missing
    label = np.where(rng.random(n) < 0.7, "positive", "negative").astype(object)
    label[[10, 11, 12]] = ["Positive ", "POSITIVE", "positive!"]  # spelling variants
    label[[20, 21, 22, 23, 24]] = "rare"  # a class of 5 rows
    t = pa.table({"x": x, "shop": shop.tolist(), "label": label.tolist()})
    dups = t.take([30, 30, 31])  # row 30 twice more, row 31 once more (same labels)
    conflict = t.take([40]).set_column(2, "label", pa.array(["negative" if t["label"][40].as_py() != "negative"
                                                             else "positive"]))
    return pa.concat_tables([t, dups, conflict])


def test_planted_problems_are_found(tmp_path: Path) -> None:
    t = _planted()
    report = hone.audit(t, target="label", output=tmp_path / "audit")
    found = {f.check: f for f in report.findings}
    assert found["outliers"].count == 2 and {e["row"] for e in found["outliers"].examples} == {7, 99}
    assert found["missing_values"].column == "shop" and 100 < found["missing_values"].count < 140
    assert found["exact_duplicates"].count == 3
    assert found["conflicting_labels"].count == 2 and found["conflicting_labels"].severity == "error"
    assert 40 in found["conflicting_labels"].examples[0]["rows"]
    variants = found["label_variants"].examples[0]
    assert variants["merge_into"] == "positive" and set(variants["variants"]) == {
        "positive",
        "Positive ",
        "POSITIVE",
        "positive!",
    }
    assert any(e["label"] == "rare" for e in found["rare_classes"].examples)
    assert "class_imbalance" in found
    data = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert data["rows"] == t.num_rows and {"check", "severity", "count", "examples", "remedy"} <= set(
        data["findings"][0]
    )
    assert str(report).startswith("audit of")


def test_wrong_type_values_in_a_csv_are_reported_with_their_rows(tmp_path: Path, capsys) -> None:
    rows = [f"{i},{'a' if i % 2 else 'b'}" for i in range(300)]
    rows[17] = "unknown,a"  # (n/a would be read as a missing value)
    rows[250] = "??,b"
    src = tmp_path / "t.csv"
    src.write_text("x,y\n" + "\n".join(rows) + "\n")
    before = src.read_bytes()
    assert main(["audit", str(src), "--target", "y", "--output", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "audit.json").read_text())
    wrong = next(f for f in data["findings"] if f["check"] == "wrong_type")
    assert wrong["count"] == 2 and [e["row"] for e in wrong["examples"]] == [17, 250]
    assert src.read_bytes() == before and "audit of" in capsys.readouterr().out


def test_clean_data_has_no_errors(tab_table: pa.Table) -> None:
    report = hone.audit(tab_table, target="label")
    assert not [f for f in report.findings if f.severity == "error"]
    assert "exact_duplicates" not in {f.check for f in report.findings}


def test_constant_and_id_like_columns_are_profiled_and_reported(tmp_path: Path) -> None:
    n = 400
    rng = np.random.default_rng(3)
    t = pa.table({"customer_id": list(range(n)), "const": ["same"] * n, "x": rng.normal(size=n),
                  "y": rng.choice(["a", "b"], n).tolist()})
    report = hone.audit(t, target="y", output=tmp_path)
    dropped = {f.column: f.message for f in report.findings if f.check == "dropped_column"}
    assert "constant" in dropped["const"] and "ID-like" in dropped["customer_id"]
    profile = {c["column"]: c for c in report.extras["columns"]}
    assert profile["x"]["role"] == "numeric" and profile["x"]["missing_rate"] == 0
    assert profile["const"]["distinct"] == 1 and profile["const"]["role"] == "dropped"
    assert abs(profile["customer_id"]["distinct"] - n) <= 0.05 * n
    assert "<h2>Columns</h2>" in (tmp_path / "audit.html").read_text()
