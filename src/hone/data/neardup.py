"""Near-duplicate texts: MinHash with banded LSH inside DuckDB, verified by exact Jaccard similarity.

One definition serves the split (texts in one cluster share a split, so a retweet with one word
changed can never sit in train and test at once) and the audit (:mod:`hone.quality.near_duplicates`).

How it scales: a row's text (its text columns, normalised as for exact duplicates) becomes a set of
word bigrams; 18 MinHash values (hashes of each bigram's hash with a seed) are grouped into 6 bands
of 3, and texts that share a band's hash are candidates. DuckDB computes the band hashes row by row
(vectorised list lambdas, spilling to disk past its memory limit), so memory stays bounded whatever
the table's length; only candidate texts are compared exactly. With bands of 3 out of 6, a pair of
texts with Jaccard similarity 0.7 becomes a candidate with probability 0.92, one with 0.5 with 0.55,
one with 0.2 with 0.05: candidates are then verified, so the threshold is exact for the pairs found.

Texts in a cluster are linked through verified pairs with the cluster's anchor (the text with the
smallest hash in a band bucket); clusters are connected components of those links.
"""

from __future__ import annotations

from hone.data.schema import Schema
from hone.data.sources import Table
from hone.data.sql import qi, qn
from hone.errors import DataError

BANDS, ROWS_PER_BAND = 6, 3
MIN_SHINGLES = 4  # texts shorter than 5 words are compared exactly only: "good movie" is not "bad movie"
_MAX_ROUNDS = 64


def normalised_text(expr: str) -> str:
    """SQL: text in the form under which near-identical copies collide (lower case, letters and
    digits only, single spaces), so that a retweet with other spacing or punctuation is the same row."""
    return f"trim(regexp_replace(lower(CAST({expr} AS VARCHAR)), '[^[:alnum:]]+', ' ', 'g'))"


def text_expr(schema: Schema) -> str | None:
    """SQL: a row's text columns, normalised and joined (None when the schema has no text column)."""
    cols = [c.name for c in schema.columns if c.role == "text"]
    if not cols:
        return None
    return "concat_ws(' ', " + ", ".join(f"coalesce({normalised_text(qi(c))}, '')" for c in cols) + ")"


def text_key(schema: Schema) -> str | None:
    """SQL: the hash that identifies a row's normalised text (the nodes of the near-duplicate graph)."""
    t = text_expr(schema)
    return f"hash({t})" if t else None


def _shingles(text: str) -> str:
    """SQL: the distinct hashes of the word bigrams of ``text`` (words hashed once, pairs combined)."""
    words = f"list_transform(string_split({text}, ' '), lambda x: hash(x))"
    pairs = "list_transform(range(1, len(w)), lambda i: hash(w[i], w[i + 1]))"
    return f"(SELECT list_distinct({pairs}) FROM (SELECT {words} AS w))"


def near_duplicate_clusters(table: Table, schema: Schema, *, threshold: float = 0.7, where: str = "TRUE",
                            out: str = "hone_neardup") -> int:
    """Create the temp table ``out(__t, __c, __sim)``: every text that has at least one near
    duplicate (Jaccard similarity of word bigrams >= ``threshold``, but not the same normalised text),
    its cluster ``__c`` (the smallest text key of the cluster) and its similarity to the text it was
    linked by. Rows of ``table`` are restricted by the SQL ``where``. Returns the number of texts
    in clusters (0 when the schema has no text column)."""
    if not 0 < threshold <= 1:
        raise DataError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    text = text_expr(schema)
    con = table.con
    con.execute(f"CREATE OR REPLACE TEMP TABLE {out} (__t UBIGINT, __c UBIGINT, __sim DOUBLE)")
    if text is None:
        return 0
    k = BANDS * ROWS_PER_BAND
    mins = ", ".join(f"list_min(list_transform(__hs, lambda h: hash(h, {i}))) AS __m{i}" for i in range(k))
    bands = ", ".join(f"hash({', '.join(f'__m{b * ROWS_PER_BAND + j}' for j in range(ROWS_PER_BAND))}) AS __b{b}"
                      for b in range(BANDS))
    texts = f"SELECT {text} AS __s FROM {table.view} WHERE {where}"
    hashed = f"SELECT hash(__s) AS __t, {_shingles('__s')} AS __hs FROM ({texts})"
    ordered = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = false")  # keys are content hashes: order is not needed
    try:
        # per row, its text key and band hashes (numbers only, a few dozen bytes a row; no DISTINCT,
        # which would hold every text in one hash table: copies of a text only repeat a bucket entry)
        table.execute(f"CREATE OR REPLACE TEMP TABLE hone_nd_bands AS SELECT __t, {bands} FROM "
                      f"(SELECT __t, {mins} FROM ({hashed}) WHERE len(__hs) >= {MIN_SHINGLES})")
        buckets = " UNION ALL ".join(
            f"SELECT b.__t, k.__a FROM hone_nd_bands b JOIN (SELECT __b{i} AS __b, min(__t) AS __a FROM hone_nd_bands "
            f"GROUP BY 1 HAVING count(*) > 1) k ON b.__b{i} = k.__b" for i in range(BANDS))
        table.execute(f"CREATE OR REPLACE TEMP TABLE hone_nd_cand AS SELECT DISTINCT __t, __a FROM ({buckets}) "
                      "WHERE __t <> __a")
        if not table.one("SELECT count(*) FROM hone_nd_cand")[0]:
            return 0
        # exact Jaccard of each candidate and its anchor: the texts of candidates only are read again
        table.execute(f"CREATE OR REPLACE TEMP TABLE hone_nd_sh AS SELECT __t, {_shingles('__s')} AS __sh FROM "
                      f"(SELECT __t, any_value(__s) AS __s FROM (SELECT hash(__s) AS __t, __s FROM ({texts})) WHERE "
                      "__t IN (SELECT __t FROM hone_nd_cand UNION SELECT __a FROM hone_nd_cand) GROUP BY __t)")
        inter = "len(list_intersect(a.__sh, b.__sh))"
        table.execute("CREATE OR REPLACE TEMP TABLE hone_nd_edges AS SELECT c.__t, c.__a, "
                      f"{inter} / (len(a.__sh) + len(b.__sh) - {inter})::DOUBLE AS __sim FROM hone_nd_cand c "
                      "JOIN hone_nd_sh a ON a.__t = c.__t JOIN hone_nd_sh b ON b.__t = c.__a")
        table.execute(f"DELETE FROM hone_nd_edges WHERE __sim < {qn(float(threshold))}")
        _components(table, out)
        return int(table.one(f"SELECT count(*) FROM {out}")[0])
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if ordered else 'false'}")
        con.execute("DROP TABLE IF EXISTS hone_nd_bands; DROP TABLE IF EXISTS hone_nd_cand; "
                    "DROP TABLE IF EXISTS hone_nd_sh; DROP TABLE IF EXISTS hone_nd_edges; "
                    "DROP TABLE IF EXISTS hone_nd_label; DROP TABLE IF EXISTS hone_nd_next")


def _components(table: Table, out: str) -> None:
    """Connected components of ``hone_nd_edges`` by min-label propagation (each round a join)."""
    table.execute("CREATE OR REPLACE TEMP TABLE hone_nd_label AS SELECT __t, min(__a) AS __c, max(__sim) AS __sim "
                  "FROM (SELECT __t, __a, __sim FROM hone_nd_edges UNION ALL SELECT __a, __a, 1.0 FROM hone_nd_edges) "
                  "GROUP BY __t")
    table.execute("CREATE OR REPLACE TEMP TABLE hone_nd_sym AS SELECT __t AS __x, __a AS __y FROM hone_nd_edges "
                  "UNION ALL SELECT __a, __t FROM hone_nd_edges")
    try:
        for _ in range(_MAX_ROUNDS):
            table.execute("CREATE OR REPLACE TEMP TABLE hone_nd_next AS SELECT l.__t, least(l.__c, min(m.__c)) AS __c, "
                          "l.__sim FROM hone_nd_label l JOIN hone_nd_sym e ON e.__x = l.__t JOIN hone_nd_label m "
                          "ON m.__t = e.__y GROUP BY l.__t, l.__c, l.__sim")
            changed = table.one("SELECT count(*) FROM hone_nd_next n JOIN hone_nd_label l USING (__t) "
                                "WHERE n.__c <> l.__c")[0]
            table.execute("CREATE OR REPLACE TEMP TABLE hone_nd_label AS SELECT * FROM hone_nd_next")
            if not changed:
                break
        table.execute(f"INSERT INTO {out} SELECT __t, __c, __sim FROM hone_nd_label")
    finally:
        table.con.execute("DROP TABLE IF EXISTS hone_nd_sym")
