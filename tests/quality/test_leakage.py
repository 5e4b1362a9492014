"""Near-duplicate texts and split leakage in the audit, and the audit page."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import hone
from hone.cli import main
from tests.data.test_neardup import planted  # noqa: F401  (the fixture: real tweets with near copies)


def test_near_duplicates_and_what_a_random_split_would_leak(planted) -> None:  # noqa: F811
    table, pairs = planted
    report = hone.audit(table, target="label", **{"quality.label_errors": False})
    found = {f.check: f for f in report.findings}
    nd = found["near_duplicates"]
    assert nd.count >= 2 * 0.9 * len(pairs) and nd.severity == "warning"
    copies = {b for _, b in pairs}
    assert any(set(ex["rows"]) & copies for ex in nd.examples)
    leak = report.extras["split_leakage"]
    assert leak["split"] == "a random row split" and leak["rows_in_groups"] >= nd.count
    # an 80/10/10 row split separates about a third of the pairs; hone's split none (tests/data/test_neardup.py)
    assert 0 < leak["rows"] < leak["rows_in_groups"] and found["split_leakage"].severity == "info"


def test_a_user_split_that_separates_copies_is_an_error(planted, tmp_path: Path) -> None:  # noqa: F811
    table, pairs = planted
    fold = ["train"] * table.num_rows
    for _, b in pairs[:10]:
        fold[b] = "test"  # the near copy in test, its original in train
    exact = table.slice(0, 1)  # and one exact copy of row 0 in validation
    t = pa.concat_tables([table, exact]).append_column("fold", pa.array(fold + ["validation"]))
    report = hone.audit(t, target="label", split_column="fold", **{"quality.label_errors": False})
    f = next(f for f in report.findings if f.check == "split_leakage")
    assert f.severity == "error" and f.count >= 2 * 10 + 2
    assert report.extras["split_leakage"]["groups"] >= 11
    assert all(len(ex["splits"]) > 1 for ex in f.examples)


def test_audit_cli_writes_json_and_a_self_contained_page(planted, tmp_path: Path) -> None:  # noqa: F811
    table, _ = planted
    src = tmp_path / "tweets.parquet"
    pq.write_table(table, src)
    assert main(["audit", str(src), "--target", "label", "--output", str(tmp_path / "out"), "--no-label-errors",
                 "--near-duplicates", "0.8"]) == 0
    data = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert "label_error_check" not in data and any(f["check"] == "near_duplicates" for f in data["findings"])
    assert "0.8" in next(f for f in data["findings"] if f["check"] == "near_duplicates")["message"]
    page = (tmp_path / "out" / "audit.html").read_text()
    assert "<h2>Findings</h2>" in page and "near_duplicates" in page and "Split leakage" in page
    assert "<script" not in page and "<link" not in page and " src=" not in page  # nothing fetched
