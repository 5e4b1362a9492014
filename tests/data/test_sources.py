from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hone.data.sources import connect, count_rows, open_table
from hone.errors import DataError, EmptyDataError


def _open(src):
    t = open_table(src, connect())
    return t, count_rows(t)


def test_csv_with_bom_quotes_and_utf8(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_bytes('\ufeffid,text,label\n1,"hello, ""world""",pos\n2,"naïve café\nsecond line",neg\n'.encode())
    t, n = _open(p)
    assert t.columns == ["id", "text", "label"]  # the BOM is not part of the first name
    assert n == 2
    rows = t.sql("SELECT text FROM source ORDER BY id").fetchall()
    assert rows[0][0] == 'hello, "world"' and rows[1][0] == "naïve café\nsecond line"


def test_tsv(tmp_path: Path) -> None:
    p = tmp_path / "r.tsv"
    p.write_text("a\tb\n1\tx, y\n2\tz\n")
    t, n = _open(p)
    assert t.columns == ["a", "b"] and n == 2


def test_parquet_file_glob_and_hive_directory(tmp_path: Path, table: pa.Table) -> None:
    pq.write_table(table, tmp_path / "one.parquet")
    assert _open(tmp_path / "one.parquet")[1] == table.num_rows
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(table.slice(0, 100), parts / "a.parquet")
    pq.write_table(table.slice(100), parts / "b.parquet")
    assert _open(str(parts / "*.parquet"))[1] == table.num_rows
    hive = tmp_path / "hive"
    pq.write_to_dataset(table, hive, partition_cols=["store"])
    t, n = _open(hive)
    assert n == table.num_rows and "store" in t.columns


def test_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text("\n".join(json.dumps({"text": f"row {i}", "y": i % 2}) for i in range(5)) + "\n")
    t, n = _open(p)
    assert set(t.columns) == {"text", "y"} and n == 5


def test_sql_query_over_a_file(tmp_path: Path, table: pa.Table) -> None:
    pq.write_table(table, tmp_path / "t.parquet")
    t, n = _open(f"sql:SELECT review, label FROM '{tmp_path / 't.parquet'}' WHERE label = 'pos'")
    assert t.columns == ["review", "label"]
    assert n == sum(1 for v in table.column("label").to_pylist() if v == "pos")


def test_dataframes_and_arrow(table: pa.Table) -> None:
    pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    for obj in (table, table.to_pandas(), pl.from_arrow(table)):
        t, n = _open(obj)
        assert n == table.num_rows and t.columns == table.column_names


def test_missing_empty_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"file '.*nope\.csv' not found"):
        _open(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EmptyDataError, match="is empty"):
        _open(tmp_path / "empty.csv")
    (tmp_path / "bad.parquet").write_text("this is not parquet")
    with pytest.raises(DataError, match=r"could not read '.*bad\.parquet'"):
        _open(tmp_path / "bad.parquet")
    (tmp_path / "x.xlsx").write_text("?")
    with pytest.raises(DataError, match="unsupported file type '.xlsx'"):
        _open(tmp_path / "x.xlsx")


def test_a_record_batch_reader_is_read_more_than_once(table: pa.Table) -> None:
    # Regression: a RecordBatchReader can be consumed once, but hone reads its input several times.
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=50))
    t, n = _open(reader)
    assert n == table.num_rows and count_rows(t) == table.num_rows


def test_latin1_csv_with_encoding_and_a_hint_without(tmp_path: Path) -> None:
    p = tmp_path / "export.csv"
    p.write_bytes("name,y\ncafé au lait,a\nnaïve,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not utf-8 text: byte 0xe9 on line 2.*--encoding latin-1"):
        _open(p)
    t = open_table(p, connect(), encoding="latin-1")
    assert t.sql("SELECT name FROM source ORDER BY y").fetchall() == [("café au lait",), ("naïve",)]


def test_ragged_csv_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "rag.csv"
    p.write_text("a,b,y\n1,2,x\n3,4,y\n5,6,7,z\n8,9,x\n")
    with pytest.raises(DataError, match=r"line 4 of .*rag.csv' has 4 fields, expected 3"):
        _open(p)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_bad_cell_past_the_sniffer_sample_is_missing_and_counted(tmp_path: Path, fmt: str) -> None:
    from hone.data.sources import coerced_counts

    p = tmp_path / f"late.{fmt}"
    if fmt == "csv":
        p.write_text("x,y\n" + "".join(f"{i},a\n" for i in range(25_000)) + "oops,b\n")
    else:
        p.write_text(
            "".join(json.dumps({"x": i, "y": "a"}) + "\n" for i in range(25_000)) + '{"x": "oops", "y": "b"}\n'
        )
    t = open_table(p, connect())
    assert t.types[0] == "BIGINT"
    assert t.sql("SELECT count(x), count(*) FROM source").fetchall() == [(25_000, 25_001)]
    assert coerced_counts(t, t.tolerant) == ({"x": 1}, {})


def test_sql_errors_point_into_the_users_query(tmp_path: Path) -> None:
    for query, expected in (("sql:SELEC 1", r"syntax error .*character 1"),
                            ("sql:SELECT * FROM nowhere", r"nowhere does not exist")):
        with pytest.raises(DataError, match=expected) as err:
            _open(query)
        text = str(err.value)
        assert "CREATE" not in text and "pg_" not in text and "source" not in text, text
