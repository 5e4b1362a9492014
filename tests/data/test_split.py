from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hone.config import SplitConfig
from hone.data.schema import infer_schema
from hone.data.sources import connect, open_table
from hone.data.split import split_table
from hone.errors import DataError


def _split(src, tmp: Path, cfg: SplitConfig | None = None, **kw):
    t = open_table(src, connect())
    schema = infer_schema(t, target="label", exclude={c: "split" for c in ("fold", "group") if c in t.columns})
    return split_table(t, schema, cfg or SplitConfig(), tmp, **kw)


def _assignment(res) -> dict[str, str]:
    # the key column is not a feature, so rows are recognised by their content
    out = {}
    for name, path in res.paths.items():
        for r in pq.read_table(path, columns=["review", "title", "price"]).to_pylist():
            out[f"{r['review']}|{r['title']}|{r['price']}"] = name
    return out


def test_fractions_and_stratification(tmp_path: Path, table: pa.Table) -> None:
    res = _split(table, tmp_path, key="id")
    assert sum(res.counts.values()) == table.num_rows
    assert abs(res.counts["train"] - 0.8 * table.num_rows) <= 3
    for name in ("train", "validation", "test"):
        cc = res.class_counts[name]
        share = cc["pos"] / sum(cc.values())
        overall = sum(1 for v in table.column("label").to_pylist() if v == "pos") / table.num_rows
        assert abs(share - overall) < 0.03, (name, share, overall)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n_parts=st.integers(1, 4))
def test_split_ignores_row_order_and_partitioning(tmp_path_factory, table: pa.Table, seed: int, n_parts: int) -> None:
    tmp = tmp_path_factory.mktemp("split")
    base = _assignment(_split(table, tmp / "a", key="id"))
    perm = np.random.default_rng(seed).permutation(table.num_rows)
    shuffled = table.take(pa.array(perm))
    parts = tmp / "parts"
    parts.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(table.num_rows), n_parts)):
        pq.write_table(shuffled.take(pa.array(chunk)), parts / f"p{i}.parquet")
    assert _assignment(_split(parts, tmp / "b", key="id")) == base


def test_without_key_exact_duplicates_share_a_split(tmp_path: Path, table: pa.Table) -> None:
    doubled = pa.concat_tables([table, table])
    res = _split(doubled.drop_columns(["id"]), tmp_path)
    seen: dict[str, set[str]] = {}
    for name, path in res.paths.items():
        for r in pq.read_table(path, columns=["review", "title"]).to_pylist():
            seen.setdefault(r["review"] + r["title"], set()).add(name)
    assert all(len(v) == 1 for v in seen.values())


def test_group_stays_in_one_split(tmp_path: Path, table: pa.Table) -> None:
    groups = [f"g{i % 37}" for i in range(table.num_rows)]
    res = _split(table.append_column("group", pa.array(groups)), tmp_path, SplitConfig(group="group"))
    content = [
        f"{r['review']}|{r['title']}|{r['price']}" for r in table.select(["review", "title", "price"]).to_pylist()
    ]
    assigned = _assignment(res)
    where: dict[str, set[str]] = {}
    for g, c in zip(groups, content):
        where.setdefault(g, set()).add(assigned[c])
    assert all(len(v) == 1 for v in where.values())
    assert len({s for v in where.values() for s in v}) == 3


def test_user_split_column(tmp_path: Path, table: pa.Table) -> None:
    fold = pa.array(["train" if i % 4 else ("Valid" if i % 8 else "test") for i in range(table.num_rows)])
    res = _split(table.append_column("fold", fold), tmp_path, SplitConfig(column="fold"))
    assert res.counts == {"train": 300, "validation": 50, "test": 50}
    bad = table.append_column("fold", pa.array(["train"] * (table.num_rows - 1) + ["holdout"]))
    with pytest.raises(DataError, match=r"split column 'fold' .* has value 'holdout'"):
        _split(bad, tmp_path / "bad", SplitConfig(column="fold"))


def test_train_cap_is_a_deterministic_sample(tmp_path: Path, table: pa.Table) -> None:
    a = _split(table, tmp_path / "a", key="id", max_rows={"train": 50})
    b = _split(table, tmp_path / "b", key="id", max_rows={"train": 50})
    assert a.counts["train"] == 50 and a.skipped["train_over_cap"] == 270
    assert _assignment(a) == _assignment(b)


def test_capped_splits_are_stratified_samples(tmp_path: Path) -> None:
    n = 2000
    labels = ["rare" if i % 20 == 0 else "common" for i in range(n)]  # 5% rare
    t = pa.table({"x": [float(i) for i in range(n)], "w": [f"v{i % 13}" for i in range(n)], "label": labels})
    res = _split(t, tmp_path, max_rows={"train": 100, "validation": 40})
    assert res.counts["train"] == 100 and res.class_counts["train"] == {"common": 95, "rare": 5}
    assert res.class_counts["validation"] == {"common": 38, "rare": 2}


def _splits_of(res, cols: list[str]) -> dict[tuple, set[str]]:
    where: dict[tuple, set[str]] = {}
    for name, path in res.paths.items():
        for r in pq.read_table(path, columns=cols).to_pylist():
            where.setdefault(tuple(r[c] for c in cols), set()).add(name)
    return where


def test_group_wins_over_a_key(tmp_path: Path, table: pa.Table) -> None:
    # Regression: --key with --group hashed the key and scattered a group over the splits.
    groups = [f"g{i % 23}" for i in range(table.num_rows)]
    t = table.append_column("group", pa.array(groups))
    res = _split(t, tmp_path, SplitConfig(group="group"), key="id")
    assigned = _assignment(res)
    content = [
        f"{r['review']}|{r['title']}|{r['price']}" for r in table.select(["review", "title", "price"]).to_pylist()
    ]
    where: dict[str, set[str]] = {}
    for g, c in zip(groups, content):
        where.setdefault(g, set()).add(assigned[c])
    assert all(len(v) == 1 for v in where.values()), where


def test_conflicting_label_duplicates_share_a_split(tmp_path: Path) -> None:
    # Regression: rows were ranked per class, so the same features with two labels could land in
    # two splits. 300 feature rows, each present with both labels (and some a third time).
    n = 300
    feats = [f"row {i} text value" for i in range(n)]
    rows = [(f, "pos") for f in feats] + [(f, "neg") for f in feats] + [(f, "pos") for f in feats[:100]]
    t = pa.table({"w": [r[0] for r in rows], "x": [float(feats.index(r[0]) % 7) for r in rows],
                  "label": [r[1] for r in rows]})
    res = _split(t, tmp_path)
    where = _splits_of(res, ["w", "x"])
    assert len(where) == n and all(len(v) == 1 for v in where.values())
    assert all(res.counts[s] > 0 for s in ("train", "validation", "test"))


def test_samples_depend_on_the_split_seed_only(tmp_path: Path, table: pa.Table) -> None:
    # split_table no longer takes the training seed: the capped samples are a function of the data
    # and split.seed; a different split.seed draws a different sample.
    caps = {"train": 60, "validation": 20, "test": 20}
    a = _split(table, tmp_path / "a", key="id", max_rows=caps)
    b = _split(table, tmp_path / "b", key="id", max_rows=caps)
    c = _split(table, tmp_path / "c", SplitConfig(seed=7), key="id", max_rows=caps)
    assert a.fingerprint["splits"] == b.fingerprint["splits"]
    assert a.fingerprint["splits"]["test"] != c.fingerprint["splits"]["test"]


def test_texts_differing_only_by_case_spacing_or_punctuation_share_a_split(tmp_path: Path) -> None:
    base = [f"great coffee number {i} arrived fresh" for i in range(200)]
    variants = [t.upper() + "!!" for t in base] + [t.replace(" ", "  ") + " ..." for t in base]
    texts = base + variants
    t = pa.table({"review": texts, "label": [("pos" if i % 2 else "neg") for i in range(200)] * 3})
    res = _split(t, tmp_path)
    where: dict[str, set[str]] = {}
    for name, path in res.paths.items():
        for r in pq.read_table(path, columns=["review"]).to_pylist():
            key = " ".join("".join(ch if ch.isalnum() else " " for ch in r["review"].lower()).split())
            where.setdefault(key, set()).add(name)
    assert len(where) == 200 and all(len(v) == 1 for v in where.values())


@pytest.mark.parametrize("rows, group_rows", [(331, 16384), (5000, 300)])
def test_data_parallel_shards_are_disjoint_and_equal_in_steps(tmp_path, rows: int, group_rows: int) -> None:
    from hone.data.batches import shuffled_batches

    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"i": np.arange(rows)}), path, row_group_size=group_rows)
    for epoch in (0, 1):
        shards = [list(shuffled_batches(path, 32, seed=3, epoch=epoch, rank=r, world_size=2)) for r in (0, 1)]
        assert len(shards[0]) == len(shards[1])  # the same number of steps on both processes
        seen = [np.concatenate([b.column("i").to_numpy() for b in s]) for s in shards]
        assert not set(seen[0]) & set(seen[1])  # disjoint
        union = set(seen[0]) | set(seen[1])
        if group_rows >= rows:  # one row group: both read the file and split each global batch exactly
            assert len(union) >= rows - 1
        else:  # each reads only its own row groups: at most a few batches skipped to keep steps equal
            assert len(union) >= rows - 2 * 300
            groups = [{int(i) // group_rows for i in s} for s in seen]
            assert not groups[0] & groups[1]  # no row group is read by both
